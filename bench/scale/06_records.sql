-- Notices (acceptance and decision of the regime and EIA matters, a conclusion notice a
-- concluded project), holds (one matter in eight; an open prerequisite wait only while
-- its land matter is still open, so nothing is due), commitments (one matter in
-- seventeen; the open ones due later), rectification orders with their clocks,
-- inspections and penalties, implementation reports, delivered deliveries, back-filled
-- acts, project changes and intermediary services.
SELECT setseed(0.47);
INSERT INTO notices(project_id, project_code, matter_code, kind, number, content, issued_at, sha256)
SELECT pm.project_id, p.project_code, pm.matter_code, kd, p.project_code || '-' || pm.k || '-' || kd, '{"title":"通知书"}',
  CASE kd WHEN 'acceptance' THEN pm.accepted_at ELSE pm.concluded_at END, NULL
FROM h_pm pm JOIN projects p ON p.id = pm.project_id, unnest(ARRAY['acceptance', 'decision']) kd
WHERE pm.k IN (1, 3) AND pm.accepted_at IS NOT NULL AND (kd = 'acceptance' OR pm.concluded_at IS NOT NULL);
INSERT INTO notices(project_id, project_code, matter_code, kind, number, content, issued_at, sha256)
SELECT p.id, p.project_code, NULL, 'conclusion', p.project_code || '-conclusion', '{"title":"办结告知书"}', c.concluded_at, NULL
FROM projects p JOIN h_pconc c ON c.project_id = p.id WHERE p.status = 'concluded';
INSERT INTO holds(project_id, matter_code, reason, started_at, ended_at)
SELECT pm.project_id, pm.matter_code, h.reason, pm.received_at,
  CASE WHEN pm.status IN ('handling', 'dispatched') AND pm.id % 2 = 0
            AND (h.reason NOT LIKE 'prerequisite:%' OR land.status IN ('notified', 'dispatched', 'handling'))
       THEN NULL ELSE pm.received_at + interval '5 days' END
FROM h_pm pm
JOIN h_pm land ON land.project_id = pm.project_id AND land.k = 2
CROSS JOIN LATERAL (SELECT CASE WHEN pm.id % 3 = 0 OR pm.k = 2 THEN 'intermediary' WHEN pm.id % 3 = 1 THEN 'tolerated_gap'
                                ELSE 'prerequisite:land_pre_review' END AS reason) h
WHERE pm.received_at IS NOT NULL AND pm.id % 8 = 0;
INSERT INTO material_commitments(project_matter_id, project_code, matter_code, material, commitment, deadline_at, committed_at,
                                 recorded_by, state, closed_at)
SELECT pm.id, p.project_code, pm.matter_code, 'm2', '承诺',
  CASE WHEN pm.status IN ('handling', 'dispatched', 'notified') THEN timestamptz '2026-11-20 02:00+00' + (pm.id % 30 + 1) * interval '1 day'
       ELSE COALESCE(pm.received_at, pm.declared_at) + interval '30 days' END,
  COALESCE(pm.received_at, pm.declared_at), 'window',
  CASE WHEN pm.status IN ('handling', 'dispatched', 'notified') THEN 'open' WHEN pm.id % 5 = 0 THEN 'lapsed' ELSE 'fulfilled' END,
  CASE WHEN pm.status IN ('handling', 'dispatched', 'notified') THEN NULL ELSE COALESCE(pm.received_at, pm.declared_at) + interval '10 days' END
FROM h_pm pm JOIN projects p ON p.id = pm.project_id WHERE pm.id % 17 = 0;
INSERT INTO clocks(id, kind, project_id, project_code, matter_code, department_code, instance_id, scope_id, started_at, limit_days,
                   yellow_fraction, pauses, yellow_at, due_at, state, light, next_check_at, stopped_at, calendar_provisional,
                   calendar_revision, version)
SELECT 8 * @projects@ + g, 'rectification', p.id, p.project_code, NULL,
  CASE WHEN p.region_code = '510411' THEN 'env' ELSE 'env_' || p.region_code END, NULL, NULL,
  p.declared_at + interval '200 days', 20, 0.8, '[]', p.declared_at + interval '220 days', p.declared_at + interval '228 days',
  CASE WHEN g % 10 = 0 THEN 'running' ELSE 'stopped' END,
  CASE WHEN g % 10 = 0 AND p.declared_at + interval '228 days' <= '2026-11-20 02:00+00' THEN 'red' WHEN g % 13 = 0 THEN 'red' ELSE 'green' END,
  CASE WHEN g % 10 = 0 AND p.declared_at + interval '228 days' > '2026-11-20 02:00+00' THEN p.declared_at + interval '220 days' END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE p.declared_at + interval '215 days' END, false,
  (SELECT value FROM platform_state WHERE key = 'calendar_revision'), 1
FROM generate_series(1, @projects@ / 10) g JOIN projects p ON p.id = (g * 9 % @projects@) + 1;
UPDATE clocks SET light = 'yellow', next_check_at = due_at
WHERE kind = 'rectification' AND state = 'running' AND yellow_at <= '2026-11-20 02:00+00' AND due_at > '2026-11-20 02:00+00';
SELECT setval(pg_get_serial_sequence('clocks', 'id'), (SELECT max(id) FROM clocks));
INSERT INTO supervision_records(project_id, project_code, region_code, department_code, kind, title, content, details, public,
                                clock_id, state, recorded_at, recorded_by, closed_at)
SELECT c.project_id, c.project_code, p.region_code, c.department_code, 'rectification', '整改', '内容', '{}', (c.id % 10 <> 3), c.id,
  CASE WHEN c.state = 'running' THEN 'open' ELSE 'closed' END, c.started_at, 'env', c.stopped_at
FROM clocks c JOIN projects p ON p.id = c.project_id WHERE c.kind = 'rectification';
INSERT INTO supervision_records(project_id, project_code, region_code, department_code, kind, title, content, details, public,
                                clock_id, state, recorded_at, recorded_by, closed_at)
SELECT p.id, p.project_code, p.region_code, CASE WHEN p.region_code = '510411' THEN 'land' ELSE 'land_' || p.region_code END,
  CASE WHEN g <= @projects@ / 5 THEN 'inspection' ELSE 'penalty' END, '检查', '内容',
  CASE WHEN g <= @projects@ / 5 THEN '{}'::json
       ELSE json_build_object('decision_number', '罚' || g, 'amount', '1000', 'legal_basis', '条例') END,
  (g > @projects@ / 5 OR g % 10 <> 3), NULL, 'closed',
  LEAST(p.declared_at + interval '300 days' * random(), timestamptz '2026-11-20 01:00+00'), 'land', NULL
FROM generate_series(1, @projects@ / 4) g JOIN projects p ON p.id = (g * 13 % @projects@) + 1;
INSERT INTO implementation_reports(project_id, project_code, kind, period, percent_complete, investment_completed, content,
                                   reported_at, reported_by)
SELECT p.id, p.project_code, k, '2025-01', CASE WHEN k = 'progress' THEN 50 END, 100, '',
  c.concluded_at + (CASE WHEN k = 'start' THEN 30 ELSE 60 END) * interval '1 day', 'applicant'
FROM projects p JOIN h_pconc c ON c.project_id = p.id, unnest(ARRAY['start', 'progress']) k
WHERE p.status = 'concluded' AND p.id % 10 <> 0 AND c.concluded_at + interval '60 days' < '2026-11-20';
INSERT INTO deliveries(target_instance_id, target_task_id, payload, created_at, delivered_at)
SELECT pm.project_id, md5(pm.id::text)::uuid::text, '{"matter_result":{}}', pm.concluded_at, pm.concluded_at
FROM h_pm pm WHERE pm.concluded_at IS NOT NULL;
INSERT INTO backfilled_acts(project_code, matter_code, department_code, act, effective_at, entered_at, reason, actor)
SELECT p.project_code, 'eia_approval', CASE WHEN p.region_code = '510411' THEN 'env' ELSE 'env_' || p.region_code END, 'decision',
  p.declared_at, p.declared_at + interval '3 days', '线下', 'env'
FROM projects p WHERE p.id % 33 = 0;
INSERT INTO project_changes(project_id, kind, reason, details, at, actor_id)
SELECT p.id, 'adjustment', '调整', '{}', p.declared_at + interval '10 days', NULL FROM projects p WHERE p.id % 10 = 0;
INSERT INTO intermediary_services(project_matter_id, project_code, matter_code, department_code, name, qualification, service,
                                  deadline, status, events, result, commissioned_at, completed_at, version)
SELECT pm.id, p.project_code, pm.matter_code, pm.department_code, '中介', '甲级', '评估', (pm.received_at + interval '30 days')::date,
  'completed', '[]', '', pm.received_at, pm.received_at + interval '20 days', 1
FROM h_pm pm JOIN projects p ON p.id = pm.project_id WHERE pm.k = 3 AND pm.received_at IS NOT NULL AND pm.id % 5 = 0;
