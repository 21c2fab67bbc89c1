-- Clocks: each project's dispatch clock (window) and a reply clock (env), the promised
-- (or filing) clocks of the regime matter and of the EIA matter, one in ten with a
-- correction pause; lights as the sweep would have left them (nothing due now); the
-- yellow and red alerts they raised. Ids: dispatch = project id, reply = P + project id,
-- promised = 2P + matter id (rectification clocks, in 06, are 8P + n).
SELECT setseed(0.46);
INSERT INTO clocks(id, kind, project_id, project_code, matter_code, department_code, instance_id, scope_id, started_at, limit_days,
                   yellow_fraction, pauses, yellow_at, due_at, state, light, next_check_at, stopped_at, calendar_provisional,
                   calendar_revision, version)
SELECT p.id, 'dispatch', p.id, p.project_code, NULL,
  CASE WHEN p.region_code = '510411' THEN 'window' ELSE 'window_' || p.region_code END, p.id, NULL,
  p.declared_at, 1, 0.8, '[]', p.declared_at + interval '19 hours', p.declared_at + interval '24 hours',
  CASE WHEN p.status = 'declared' THEN 'running' ELSE 'stopped' END,
  CASE WHEN p.id % 17 = 0 THEN 'red' WHEN p.id % 7 = 0 THEN 'yellow' ELSE 'green' END,
  NULL, CASE WHEN p.status = 'declared' THEN NULL ELSE p.declared_at + interval '20 hours' END, false,
  (SELECT value FROM platform_state WHERE key = 'calendar_revision'), 1
FROM projects p;
INSERT INTO clocks(id, kind, project_id, project_code, matter_code, department_code, instance_id, scope_id, started_at, limit_days,
                   yellow_fraction, pauses, yellow_at, due_at, state, light, next_check_at, stopped_at, calendar_provisional,
                   calendar_revision, version)
SELECT @projects@ + p.id, 'reply', p.id, p.project_code, NULL,
  CASE WHEN p.region_code = '510411' THEN 'env' ELSE 'env_' || p.region_code END, p.id, md5(p.id::text)::uuid::text,
  p.declared_at + interval '1 day', 3, 0.8, '[]', p.declared_at + interval '3 days', p.declared_at + interval '4 days',
  CASE WHEN p.status = 'declared' THEN 'running' ELSE 'stopped' END,
  CASE WHEN p.id % 19 = 0 THEN 'red' WHEN p.id % 11 = 0 THEN 'yellow' ELSE 'green' END,
  NULL,
  CASE WHEN p.status = 'declared' THEN NULL
       WHEN p.id % 19 = 0 AND p.id % 2 = 0 THEN p.declared_at + interval '4 days' + interval '1 microsecond'
       WHEN p.id % 19 = 0 THEN p.declared_at + interval '4 days 3 hours'
       ELSE p.declared_at + interval '2 days' END, false,
  (SELECT value FROM platform_state WHERE key = 'calendar_revision'), 1
FROM projects p;
CREATE TEMP TABLE pc AS
SELECT pm.*, CASE WHEN pm.matter_code = 'enterprise_filing' THEN 'filing' ELSE 'promised' END AS ckind,
  CASE WHEN pm.matter_code = 'enterprise_filing' THEN 3 WHEN pm.matter_code = 'eia_approval' THEN 30 ELSE 10 END AS lim,
  COALESCE(pm.accepted_at, pm.received_at) AS st
FROM h_pm pm WHERE pm.k IN (1, 3) AND pm.received_at IS NOT NULL;
ALTER TABLE pc ADD COLUMN yellow_at timestamptz, ADD COLUMN due_at timestamptz, ADD COLUMN running boolean;
UPDATE pc SET due_at = st + lim * interval '1.4 days', yellow_at = st + lim * 0.8 * interval '1.4 days',
              running = status IN ('handling', 'dispatched');
INSERT INTO clocks(id, kind, project_id, project_code, matter_code, department_code, instance_id, scope_id, started_at, limit_days,
                   yellow_fraction, pauses, yellow_at, due_at, state, light, next_check_at, stopped_at, calendar_provisional,
                   calendar_revision, version)
SELECT 2 * @projects@ + pc.id, pc.ckind, pc.project_id, p.project_code, pc.matter_code, pc.department_code, @projects@ + pc.id, NULL,
  pc.st, pc.lim, 0.8,
  CASE WHEN pc.r2 < 0.1 THEN json_build_array(json_build_object('start', (pc.st + interval '1 day')::text,
                                                                'end', (pc.st + interval '3 day')::text, 'reason', 'correction'))
       ELSE '[]'::json END,
  pc.yellow_at, pc.due_at,
  CASE WHEN pc.running THEN (CASE WHEN pc.r3 < 0.05 THEN 'paused' ELSE 'running' END) ELSE 'stopped' END,
  CASE WHEN pc.running THEN (CASE WHEN pc.due_at <= '2026-11-20 02:00+00' THEN 'red'
                                  WHEN pc.yellow_at <= '2026-11-20 02:00+00' THEN 'yellow' ELSE 'green' END)
       ELSE pc.light END,
  CASE WHEN pc.running THEN (CASE WHEN pc.due_at <= '2026-11-20 02:00+00' THEN NULL
                                  WHEN pc.yellow_at <= '2026-11-20 02:00+00' THEN pc.due_at ELSE pc.yellow_at END) END,
  CASE WHEN pc.running THEN NULL ELSE pc.concluded_at END, false,
  (SELECT value FROM platform_state WHERE key = 'calendar_revision'), 1
FROM pc JOIN projects p ON p.id = pc.project_id;
INSERT INTO alerts(clock_id, light, clock_kind, project_code, matter_code, department_code, due_at, at, calendar_provisional)
SELECT id, 'yellow', kind, project_code, matter_code, department_code, due_at, yellow_at, false
FROM clocks WHERE light IN ('yellow', 'red');
INSERT INTO alerts(clock_id, light, clock_kind, project_code, matter_code, department_code, due_at, at, calendar_provisional)
SELECT id, 'red', kind, project_code, matter_code, department_code, due_at, due_at, false
FROM clocks WHERE light = 'red';
