-- A province: 21 cities (攀枝花市 510400 is the demo's), 165 districts each with the
-- platform's seven departments (仁和区 510411 keeps the demo's codes), supervision
-- departments of the province and the city with a supervisor each, and the project units.
SELECT setseed(0.42);
INSERT INTO regions(code, name, parent_code, level)
SELECT c, '市' || c, '510000', 'city'
FROM unnest(ARRAY['510100','510300','510500','510600','510700','510800','510900','511000','511100','511300',
                  '511400','511500','511600','511700','511800','511900','512000','513200','513300','513400']) c;
INSERT INTO regions(code, name, parent_code, level)
SELECT substr(c, 1, 4) || lpad(d::text, 2, '0'), '区' || substr(c, 1, 4) || lpad(d::text, 2, '0'), c, 'district'
FROM unnest(ARRAY['510100','510300','510500','510600','510700','510800','510900','511000','511100','511300',
                  '511400','511500','511600','511700','511800','511900','512000','513200','513300','513400']) c,
     generate_series(2, 9) d;
INSERT INTO regions(code, name, parent_code, level)
VALUES ('510402', '东区', '510400', 'district'), ('510403', '西区', '510400', 'district'),
       ('510421', '米易县', '510400', 'district'), ('510422', '盐边县', '510400', 'district');
CREATE TABLE h_district AS
SELECT (row_number() OVER (ORDER BY code) - 1)::int AS idx, code FROM regions WHERE level = 'district';
INSERT INTO departments(code, name, region_code, kind)
SELECT b.base || '_' || d.code, b.base || d.code, d.code, b.kind
FROM h_district d,
     (VALUES ('window', 'general_window'), ('drc', 'coordinating'), ('land', 'approving'), ('env', 'approving'),
             ('housing', 'approving'), ('water', 'approving'), ('supervision', 'supervision')) b(base, kind)
WHERE d.code <> '510411';
INSERT INTO departments(code, name, region_code, kind)
VALUES ('supervision_510000', '省电子监察', '510000', 'supervision'), ('supervision_510400', '市电子监察', '510400', 'supervision');
INSERT INTO users(username, password_hash, display_name, department_code, project_unit_id, roles, active, created_at, token_version)
SELECT 'prov_supervisor', password_hash, '省监察员', 'supervision_510000', NULL, '["supervisor"]', true, created_at, 0
FROM users WHERE username = 'supervisor';
INSERT INTO users(username, password_hash, display_name, department_code, project_unit_id, roles, active, created_at, token_version)
SELECT 'city_supervisor', password_hash, '市监察员', 'supervision_510400', NULL, '["supervisor"]', true, created_at, 0
FROM users WHERE username = 'supervisor';
-- project units 3.. (1 and 2 are the demo applicants'): 3 projects a unit
INSERT INTO project_units(id, name, credit_code, contact_name, contact_phone)
SELECT g, '单位' || g, 'U' || lpad(g::text, 17, '0'), '联系人', '0812'
FROM generate_series(3, 2 + @units@) g;
SELECT setval(pg_get_serial_sequence('project_units', 'id'), 2 + @units@);
