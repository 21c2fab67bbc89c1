-- Fifty audit events a project, spread from its declaration to its conclusion (or now),
-- numbered on from the demo's; the chain's hashes are placeholders (nothing here verifies
-- the chain).
SET work_mem = '256MB';
INSERT INTO audit_events(seq, at, actor, action, project_code, target, summary, prev_hash, hash)
SELECT (SELECT COALESCE(max(seq), 0) FROM audit_events) + row_number() OVER (ORDER BY at, pid, k), at, 'env', 'task.complete', code,
  'task:' || pid || '-' || k, '{"element":"handling","data":{"opinion":"同意"}}',
  md5(pid::text || k) || md5(k::text || pid), md5(k::text || pid) || md5(pid::text || k)
FROM (
  SELECT p.id AS pid, k, p.project_code AS code,
    p.declared_at + (k - 1) / 50.0 * (COALESCE(c.concluded_at, timestamptz '2026-11-20 01:00+00') - p.declared_at) AS at
  FROM projects p LEFT JOIN h_pconc c ON c.project_id = p.id AND p.status = 'concluded', generate_series(1, 50) k
) s;
UPDATE audit_head SET last_seq = (SELECT max(seq) FROM audit_events),
                      last_hash = (SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1);
RESET work_mem;
