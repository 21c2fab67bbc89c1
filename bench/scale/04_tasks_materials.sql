-- Open tasks of the open matters (three to handle, one read-only consultation; a quarter
-- of the third ones are the project unit's), the window's of declared projects, two
-- completed tasks for each of the first 88% of matters; two materials a matter.
SELECT setseed(0.45);
INSERT INTO tasks(id, instance_id, element_id, scope_id, title, lane, department_code, role, project_unit_id, assignee_id,
                  project_code, matter_code, form, ui_form, context, status, read_only, created_at, due_at, light,
                  completed_at, completed_by, version)
SELECT md5('r' || pm.id || '-' || n)::uuid::text, @projects@ + pm.id, CASE WHEN n = 4 THEN 'consultation' ELSE 'handling' END, NULL, '办理',
  CASE WHEN n = 3 AND pm.id % 4 = 0 THEN 'applicant' ELSE pm.department_code || ':officer' END,
  CASE WHEN n = 3 AND pm.id % 4 = 0 THEN NULL ELSE pm.department_code END,
  CASE WHEN n = 3 AND pm.id % 4 = 0 THEN 'applicant' ELSE 'officer' END,
  CASE WHEN n = 3 AND pm.id % 4 = 0 THEN p.project_unit_id END, NULL,
  p.project_code, pm.matter_code, 'handling.schema.json', NULL, '{"departments":["env"],"matter_code":"x"}', 'ready', n = 4,
  timestamptz '2026-11-20 02:00+00' - pm.r * 10 * interval '1 day', timestamptz '2026-11-20 02:00+00' + (pm.r3 * 15 - 5) * interval '1 day',
  CASE WHEN pm.r3 < 0.2 THEN 'red' WHEN pm.r3 < 0.35 THEN 'yellow' ELSE 'green' END, NULL, NULL, 1
FROM h_pm pm JOIN projects p ON p.id = pm.project_id, generate_series(1, 4) n
WHERE pm.status IN ('handling', 'dispatched');
INSERT INTO tasks(id, instance_id, element_id, scope_id, title, lane, department_code, role, project_unit_id, assignee_id,
                  project_code, matter_code, form, ui_form, context, status, read_only, created_at, due_at, light,
                  completed_at, completed_by, version)
SELECT md5('w' || p.id)::uuid::text, p.id, 'window_review', NULL, '窗口', 'window:window_officer',
  CASE WHEN p.region_code = '510411' THEN 'window' ELSE 'window_' || p.region_code END, 'window_officer', NULL, NULL,
  p.project_code, NULL, 'window_review.schema.json', NULL, '{}', 'ready', false,
  p.declared_at, p.declared_at + interval '1 day', 'green', NULL, NULL, 1
FROM projects p WHERE p.status = 'declared';
INSERT INTO tasks(id, instance_id, element_id, scope_id, title, lane, department_code, role, project_unit_id, assignee_id,
                  project_code, matter_code, form, ui_form, context, status, read_only, created_at, due_at, light,
                  completed_at, completed_by, version)
SELECT md5('c' || pm.id || '-' || n)::uuid::text, @projects@ + pm.id, CASE n WHEN 1 THEN 'acceptance' ELSE 'decision' END, NULL, '办理',
  pm.department_code || ':officer', pm.department_code, 'officer', NULL, NULL,
  p.project_code, pm.matter_code, 'decision.schema.json', NULL,
  '{"departments":["env"],"matter_code":"x","decision":"approve","opinion":"同意"}', 'completed', false,
  COALESCE(pm.received_at, pm.declared_at), COALESCE(pm.received_at, pm.declared_at) + interval '5 days', 'green',
  COALESCE(pm.concluded_at, pm.accepted_at, pm.declared_at), 'officer', 2
FROM h_pm pm JOIN projects p ON p.id = pm.project_id, generate_series(1, 2) n
WHERE pm.id <= @projects@ * 44 / 10;
INSERT INTO stored_files(sha256, size, media_type, created_at)
SELECT encode(sha256(g::text::bytea), 'hex'), 1000, 'application/pdf', timestamptz '2023-11-01 00:00+00'
FROM generate_series(1, 1000) g;
INSERT INTO materials(id, project_id, project_code, matter_code, material, filename, sha256, size, media_type, uploaded_by,
                      uploaded_at, status)
SELECT (pm.id - 1) * 2 + n, pm.project_id, p.project_code, pm.matter_code, 'm' || n, '材料.pdf',
  encode(sha256(((pm.id * 2 + n) % 1000 + 1)::text::bytea), 'hex'), 1000, 'application/pdf', 'applicant', pm.declared_at,
  CASE WHEN pm.accepted_at IS NOT NULL THEN 'accepted' ELSE 'submitted' END
FROM h_pm pm JOIN projects p ON p.id = pm.project_id, generate_series(1, 2) n;
SELECT setval(pg_get_serial_sequence('materials', 'id'), 10 * @projects@);
