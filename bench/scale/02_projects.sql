-- Projects declared over three years up to the benchmark's instant (2026-11-20 10:00
-- Shanghai), id 1 the newest; spread over the districts; every 333rd is the demo
-- applicant's (unit 1, in 仁和区). Older projects have mostly concluded.
SELECT setseed(0.43);
CREATE TABLE h_proj AS
SELECT g AS id, d.code AS region,
  timestamptz '2026-11-20 02:00+00' - (g::float / @projects@ * 1095) * interval '1 day' + (random() * 3600) * interval '1 second' AS declared_at,
  CASE WHEN random() < 0.6 THEN 'filing' WHEN random() < 0.75 THEN 'approval' ELSE 'examination' END AS regime,
  random() AS r1, random() AS r2,
  CASE WHEN g % 333 = 0 THEN 1 ELSE 3 + (g * 31) % @units@ END AS unit
FROM generate_series(1, @projects@) g
JOIN h_district d ON d.idx = (g * 7919) % (SELECT count(*) FROM h_district);
ALTER TABLE h_proj ADD COLUMN status text, ADD COLUMN age_days float;
UPDATE h_proj SET age_days = extract(epoch FROM timestamptz '2026-11-20 02:00+00' - declared_at) / 86400;
UPDATE h_proj SET status = CASE
  WHEN age_days < 60 THEN (CASE WHEN r1 < 0.10 THEN 'declared' WHEN r1 < 0.60 THEN 'dispatched' ELSE 'concluded' END)
  ELSE (CASE WHEN r1 < 0.05 THEN 'dispatched' WHEN r1 < 0.08 THEN 'superseded' WHEN r1 < 0.10 THEN 'cancelled' ELSE 'concluded' END) END;
UPDATE h_proj SET region = '510411' WHERE unit = 1;
INSERT INTO projects(id, project_code, legacy_code, name, regime, region_code, industry_code, location, investment,
                     construction_content, start_year, end_year, new_land_use, environment_sensitive, water_soil_impact,
                     building_works, project_unit_id, status, suspended, declared_at, supersedes_id, superseded_by_id, version,
                     declaration_key, declaration_sha256)
SELECT id,
  to_char(declared_at AT TIME ZONE 'Asia/Shanghai', 'YYYY') || '-' || region || '-' || lpad(((id % 90) + 10)::text, 2, '0')
    || '-0' || (CASE regime WHEN 'filing' THEN 3 WHEN 'approval' THEN 2 ELSE 1 END) || '-' || lpad(id::text, 6, '0'),
  CASE WHEN id % 50 = 0 THEN 'LEGACY-' || id END,
  '项目' || id, regime, region, lpad(((id % 90) + 10)::text, 2, '0'), '地点', 1000 + id, '建设内容', 2024, 2027,
  true, true, true, true, unit, status, (r2 < 0.005), declared_at, NULL, NULL, 1, NULL, NULL
FROM h_proj;
SELECT setval(pg_get_serial_sequence('projects', 'id'), @projects@);
