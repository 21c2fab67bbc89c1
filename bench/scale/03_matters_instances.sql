-- Five matters a project (its regime's, land, EIA, soil and water, construction permit),
-- with the instants and, for matters that ended after acceptance, the stored handling
-- time (5/7 of the calendar days, a plausible figure) on the current calendar revision,
-- so the sweep has none to compute. A master instance a project, one a matter.
SELECT setseed(0.44);
CREATE TABLE h_pm AS
SELECT (p.id - 1) * 5 + k AS id, p.id AS project_id, k,
  CASE k WHEN 1 THEN (CASE p.regime WHEN 'filing' THEN 'enterprise_filing' WHEN 'approval' THEN 'enterprise_approval' ELSE 'feasibility_study' END)
         WHEN 2 THEN 'land_pre_review' WHEN 3 THEN 'eia_approval' WHEN 4 THEN 'soil_water_plan' ELSE 'construction_permit' END AS matter_code,
  CASE k WHEN 1 THEN 'drc' WHEN 2 THEN 'land' WHEN 3 THEN 'env' WHEN 4 THEN 'water' ELSE 'housing' END
    || CASE WHEN p.region = '510411' THEN '' ELSE '_' || p.region END AS department_code,
  p.status AS pstatus, p.declared_at, p.age_days, p.region, p.regime, random() AS r, random() AS r2, random() AS r3
FROM h_proj p, generate_series(1, 5) k;
ALTER TABLE h_pm ADD COLUMN status text, ADD COLUMN received_at timestamptz, ADD COLUMN accepted_at timestamptz,
                 ADD COLUMN concluded_at timestamptz, ADD COLUMN light text;
UPDATE h_pm SET status = CASE
   WHEN pstatus = 'concluded' THEN (CASE WHEN r < 0.92 THEN 'concluded' WHEN r < 0.97 THEN 'refused' ELSE 'no_matter' END)
   WHEN pstatus IN ('superseded', 'cancelled') THEN (CASE WHEN r < 0.5 THEN 'concluded' ELSE 'cancelled' END)
   WHEN pstatus = 'declared' THEN 'notified'
   ELSE (CASE WHEN r < 0.3 THEN 'concluded' WHEN r < 0.7 THEN 'handling' WHEN r < 0.95 THEN 'dispatched' ELSE 'no_matter' END) END,
 light = CASE WHEN r2 < 0.85 THEN 'green' WHEN r2 < 0.95 THEN 'yellow' ELSE 'red' END;
UPDATE h_pm SET received_at = CASE WHEN status <> 'notified' THEN declared_at + interval '1 day' END;
UPDATE h_pm SET accepted_at = CASE WHEN status IN ('concluded', 'handling', 'refused') THEN received_at + (1 + r3 * 3) * interval '1 day' END;
UPDATE h_pm SET accepted_at = LEAST(accepted_at, timestamptz '2026-11-20 01:00+00') WHERE accepted_at IS NOT NULL;
UPDATE h_pm SET concluded_at = CASE WHEN status IN ('concluded', 'refused', 'no_matter', 'cancelled') THEN
     LEAST(COALESCE(accepted_at, received_at, declared_at) + (r3 * 40) * interval '1 day', timestamptz '2026-11-20 01:30+00') END;
-- a project concluded when its last matter did
CREATE TABLE h_pconc AS SELECT project_id, max(concluded_at) + interval '1 hour' AS concluded_at FROM h_pm GROUP BY project_id;
INSERT INTO project_matters(id, project_id, matter_code, department_code, status, light, result, instance_id, updated_at,
                            guide_version, received_at, accepted_at, concluded_at, handling_days, handling_revision)
SELECT id, project_id, matter_code, department_code, status, light,
  CASE WHEN status = 'concluded' THEN json_build_object(
         'decision', CASE WHEN k = 1 AND regime = 'filing' THEN 'filed' ELSE 'approved' END,
         'document_number', '文〔2025〕' || id || '号', 'document_title', '批复' || id, 'document_date', '2025-06-01',
         'main_content', '同意')
       WHEN status = 'refused' THEN json_build_object('decision', 'denied', 'reason', '不符合')
       ELSE '{}'::json END,
  @projects@ + id, COALESCE(concluded_at, accepted_at, received_at, declared_at), 1, received_at, accepted_at, concluded_at,
  CASE WHEN accepted_at IS NOT NULL AND concluded_at IS NOT NULL
       THEN GREATEST(0, extract(epoch FROM concluded_at - accepted_at) / 86400 * 5 / 7) END,
  CASE WHEN accepted_at IS NOT NULL AND concluded_at IS NOT NULL
       THEN (SELECT value FROM platform_state WHERE key = 'calendar_revision') END
FROM h_pm;
SELECT setval(pg_get_serial_sequence('project_matters', 'id'), 5 * @projects@);
-- instances: masters 1..P (id = project id), matters P+1..6P (P + matter id); one in
-- 10,000 open matters stopped on an error
INSERT INTO process_instances(id, project_id, procedure_version_id, kind, matter_code, parent_id, parent_task_id, status, state,
                              serializer_version, next_timer_at, error_element, error_message, pending_action, created_at,
                              updated_at, version)
SELECT id, id, (SELECT id FROM procedure_versions WHERE process_id = 'project_master'), 'master', NULL, NULL, NULL,
  CASE WHEN status IN ('declared', 'dispatched') THEN 'running' ELSE 'completed' END,
  repeat('x', 200), '3.1', NULL, NULL, NULL, NULL, declared_at, declared_at, 1
FROM h_proj;
INSERT INTO process_instances(id, project_id, procedure_version_id, kind, matter_code, parent_id, parent_task_id, status, state,
                              serializer_version, next_timer_at, error_element, error_message, pending_action, created_at,
                              updated_at, version)
SELECT @projects@ + pm.id, pm.project_id, v.id, 'matter', pm.matter_code, pm.project_id, md5(pm.id::text)::uuid::text,
  CASE WHEN pm.status IN ('handling', 'dispatched') THEN (CASE WHEN pm.id % 10000 = 7 THEN 'error' ELSE 'running' END) ELSE 'completed' END,
  repeat('y', 200), '3.1',
  CASE WHEN pm.status IN ('handling', 'dispatched') THEN timestamptz '2026-11-20 02:00+00' + (1 + pm.r * 20) * interval '1 day' END,
  CASE WHEN pm.id % 10000 = 7 AND pm.status IN ('handling', 'dispatched') THEN 'handling' END,
  CASE WHEN pm.id % 10000 = 7 AND pm.status IN ('handling', 'dispatched') THEN 'boom' END,
  NULL, pm.declared_at, COALESCE(pm.concluded_at, pm.accepted_at, pm.received_at, pm.declared_at), 1
FROM h_pm pm JOIN procedure_versions v ON v.process_id = 'matter_' || pm.matter_code;
SELECT setval(pg_get_serial_sequence('process_instances', 'id'), 6 * @projects@);
