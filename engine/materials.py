"""申报材料 (materials): upload, list, download, tolerated gaps (容缺) and what acceptance needs.

The project unit uploads each material its matter's service guide lists (第十四条(一):
materials are submitted "根据在线平台所公开的办事指南"); the matter's department
uploads the scan of its signed decision (``signed_document``). A file's type is read
from its bytes, its size is capped, and its bytes are kept once in the file store,
named by SHA-256; the database keeps who uploaded what, when, under which item.

A required material may be missing at acceptance only if the guide tolerates its gap
(容缺受理): the project unit then commits (承诺) to supply it by a deadline. While such a
commitment is open the matter's clocks do not count (容缺预审环节不计); supplying the
material fulfils it, and a deadline that passes lapses it, which ends the matter (the
sweep does that). Acceptance takes the submitted materials: an accepted material is
final, so a correction notice (补正) can no longer ask for it.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import audit, files, guides, holds, organisation, projects, runtime
from engine.access import Actor, project_filter
from engine.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from engine.models import Material, MaterialCommitment, Project, ProjectMatter, ServiceGuide

#: The material code of a decision's signed scan, uploaded by the matter's department.
SIGNED_DOCUMENT = "signed_document"
#: A tolerated gap is short by nature: a commitment's deadline is at most this far ahead.
MAX_COMMITMENT_DAYS = 90
MAX_COMMITMENT_CHARS = 2000
#: A signed decision exists only once the matter is being or has been decided.
SIGNED_STATUSES = ("handling", "concluded")
#: Material rows that count as "submitted" for acceptance and commitments.
PRESENT = ("submitted", "accepted")



class TooLarge(DomainError):
    """413: the upload exceeds the configured size limit (TZXM_MAX_UPLOAD_BYTES)."""

    status = 413

    def __init__(self, limit: int):
        super().__init__(
            f"文件超过大小上限 {limit} 字节 (the file exceeds the {limit}-byte limit)",
            {"file": [f"文件不得超过 {limit} 字节 (at most {limit} bytes)"]},
        )


def _is_owner(actor: Actor, project: Project) -> bool:
    return actor.has("applicant") and actor.project_unit_id is not None and actor.project_unit_id == project.project_unit_id


def _require_visible(session: Session, actor: Actor, project: Project) -> None:
    """The project unit and the officials of the project's region (as ``projects.visible_project``)."""
    if _is_owner(actor, project):
        return
    if session.scalar(select(Project.id).where(Project.id == project.id, project_filter(session, actor))) is None:
        raise NotFound("项目不存在 (no such project)")


def _matter(session: Session, project: Project, matter_code: str) -> ProjectMatter:
    """The matter a request body names: 422 on that field when it is not on the notice."""
    pm = projects.project_matter(session, project, matter_code)
    if pm is None:
        raise Invalid.field("matter_code", f"项目的应办事项告知中没有此事项 (not on the project's matters notice): {matter_code}")
    return pm


def _guide(session: Session, pm: ProjectMatter) -> ServiceGuide | None:
    return guides.for_project_matter(session, pm)


def _guide_item(session: Session, pm: ProjectMatter, code: str, field: str = "material") -> dict[str, Any]:
    guide = _guide(session, pm)
    item = guides.material(guide, code) if guide is not None else None
    if item is None:
        raise Invalid.field(field, f"不是此事项办事指南所列的材料 (not a material on the matter's service guide): {code}")
    return item


def _present(session: Session, pm: ProjectMatter) -> dict[str, str]:
    """Each guide material submitted or accepted for the matter → its status."""
    rows = session.execute(select(Material.material, Material.status).where(
        Material.project_id == pm.project_id, Material.matter_code == pm.matter_code, Material.status.in_(PRESENT)))
    found: dict[str, str] = {}
    for code, status in rows:
        if found.get(code) != "accepted":
            found[code] = status
    return found


def _open_commitments(session: Session, pm: ProjectMatter) -> list[MaterialCommitment]:
    return list(session.scalars(select(MaterialCommitment).where(MaterialCommitment.project_matter_id == pm.id,
                                                                 MaterialCommitment.state == "open")
                                .order_by(MaterialCommitment.id)))


def _authorise_upload(session: Session, actor: Actor, project: Project, pm: ProjectMatter, material: str,
                      owed: bool) -> None:
    """``owed``: an open commitment asks for this material. A matter granted with the
    commitment open (容缺: decided before the gap was filled) still takes that material,
    and only that one: the unit supplies what it owes."""
    if material == SIGNED_DOCUMENT:
        if not (actor.has("officer") and actor.department_code == pm.department_code):
            raise Forbidden("签署的决定文件由事项所属部门的经办人上传 (the matter's department's officers upload the signed document)")
        if pm.status not in SIGNED_STATUSES:
            if pm.status not in projects.OPEN_MATTER_STATUSES:
                raise Conflict(f"事项已结束，不能上传签署文件 (the matter has ended: {pm.status})")
            raise Conflict("事项尚未进入办理，不能上传签署文件 (the matter is not being handled)")
        return
    if not _is_owner(actor, project):
        raise Forbidden("申报材料由项目单位上传 (the project unit uploads its materials)")
    granted = (pm.result or {}).get("decision") in projects.GRANTED
    if pm.status not in projects.OPEN_MATTER_STATUSES and not (owed and granted):  # materials only for an open matter
        raise Conflict(f"事项已结束，不能再提交材料 (the matter has ended: {pm.status})")
    _guide_item(session, pm, material)


def upload(session: Session, *, actor: Actor, project: Project, matter_code: str, material: str, filename: str | None,
           data: bytes, now: datetime, reused_from: int | None = None) -> Material:
    """Store one file under one item of the matter's material list.

    A newer file for the same item replaces the previous submitted one (kept, marked
    ``replaced``); an accepted one is final. Supplying a material the project unit
    committed to fulfils the commitment, and when the matter has no other open
    commitment its clocks count on. A commitment whose deadline has passed lapses first,
    as the sweep would have lapsed it: supplied late, it saves nothing (容缺: 逾期未补交…).
    """
    _require_visible(session, actor, project)
    pm = _matter(session, project, matter_code)
    runtime.lock_matter(session, pm, now=now)  # the matter's status is checked as it stands under the lock
    open_commitments = _open_commitments(session, pm)
    for commitment in open_commitments:
        if commitment.deadline_at < now:  # passed before this upload, though no sweep has run (its instant itself is in time)
            lapse(session, commitment.id, now=now, actor="platform")
    _authorise_upload(session, actor, project, pm, material,
                      owed=any(c.state == "open" and c.material == material for c in open_commitments))
    limit = files.max_upload_bytes()
    if len(data) > limit:
        raise TooLarge(limit)
    media_type = files.accepted_type(data)
    name = files.clean_filename(filename)
    previous = list(session.scalars(select(Material).where(
        Material.project_id == project.id, Material.matter_code == matter_code, Material.material == material,
        Material.status.in_(PRESENT)).order_by(Material.id)))
    if material != SIGNED_DOCUMENT and any(m.status == "accepted" for m in previous):
        raise Conflict("该材料已受理，不能替换 (the material was accepted and is final)")
    sha256 = files.store().put(session, data, media_type, now=now)
    row = Material(project_id=project.id, project_code=project.project_code, matter_code=matter_code,
                   material=material, filename=name, sha256=sha256, size=len(data), media_type=media_type,
                   uploaded_by=actor.username, uploaded_at=now, status="submitted")
    session.add(row)
    for old in previous:
        old.status = "replaced"
    session.flush()
    fulfilled = _fulfil(session, pm, [c for c in open_commitments if c.state == "open" and c.material == material],
                        now) if material != SIGNED_DOCUMENT else []
    audit.record(session, at=now, actor=actor.username, action="material.upload", project_code=project.project_code,
                 target=f"material:{row.id}",
                 summary={"matter_code": matter_code, "material": material, "filename": name, "sha256": sha256,
                          "size": len(data), "media_type": media_type, "replaced": [m.id for m in previous],
                          "fulfilled_commitments": [c.id for c in fulfilled],
                          **({"reused_from": reused_from} if reused_from is not None else {})})
    return row


def _recoding_chain(session: Session, project: Project) -> set[int]:
    """The project under every code it has had or has since (re-coded: ``superseded_by``), both ways."""
    chain, frontier = {project.id}, {project.id}
    while frontier:
        linked = session.execute(select(Project.id, Project.superseded_by_id).where(
            Project.id.in_(frontier) | Project.superseded_by_id.in_(frontier))).all()
        found = {i for row in linked for i in row if i is not None}
        frontier = found - chain
        chain |= found
    return chain


def reuse(session: Session, *, actor: Actor, project: Project, source_id: int, matter_code: str, material: str,
          now: datetime) -> Material:
    """不重复提交: a material the project unit already submitted, for another matter of the
    project or under another code of it (before or after a re-coding), is taken for an item
    of a matter without sending the file again. It is then the matter's upload in every
    respect (the same checks; it fulfils a commitment; acceptance makes it final), and the
    trail says where it came from."""
    _require_visible(session, actor, project)
    source = session.get(Material, source_id)
    if source is None or source.project_id not in _recoding_chain(session, project):
        raise NotFound("材料不存在 (no such material of this project or of the codes it had or has)")
    if source.material == SIGNED_DOCUMENT or source.status not in PRESENT:
        raise Conflict("只能沿用项目单位已提交且未被替换的申报材料 (only a submitted material that was not replaced is reused)")
    try:
        data = files.store().read(source.sha256)
    except FileNotFoundError:
        raise files.FileDamaged(source.sha256) from None
    return upload(session, actor=actor, project=project, matter_code=matter_code, material=material,
                  filename=source.filename, data=data, now=now, reused_from=source.id)


def _fulfil(session: Session, pm: ProjectMatter, fulfilled: list[MaterialCommitment], now: datetime) -> list[MaterialCommitment]:
    """The open commitments to the uploaded material (read once, under the matter's lock) are fulfilled."""
    for commitment in fulfilled:
        commitment.state, commitment.closed_at = "fulfilled", now
    if fulfilled:
        session.flush()
        end_gap_if_closed(session, pm, now=now)
    return fulfilled


def end_gap_if_closed(session: Session, pm: ProjectMatter, *, now: datetime) -> None:
    """The tolerated gap ends when no commitment of the matter is open any longer
    (supplied, or lapsed before the department received the matter): its clocks count."""
    if not _open_commitments(session, pm):
        holds.release_matter(session, pm, holds.TOLERATED_GAP, now=now)


def list_for(session: Session, actor: Actor, project: Project, *, matter_code: str | None = None, page: int,
             page_size: int) -> tuple[list[Material], int]:
    """The project's materials (every upload, replaced ones included), oldest first."""
    _require_visible(session, actor, project)
    query = select(Material).where(Material.project_id == project.id)
    organisation.check_filter(session, matter_code=matter_code)
    if matter_code:
        query = query.where(Material.matter_code == matter_code)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Material.id).offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total


def read(session: Session, actor: Actor, project: Project, material_id: int) -> tuple[Material, bytes]:
    """One material and its bytes, for download by those who may see the project."""
    _require_visible(session, actor, project)
    row = session.scalar(select(Material).where(Material.id == material_id, Material.project_id == project.id))
    if row is None:
        raise NotFound("材料不存在 (no such material)")
    try:
        return row, files.store().read(row.sha256)
    except FileNotFoundError:
        raise files.FileDamaged(row.sha256) from None


def commit(session: Session, *, actor: Actor, project: Project, matter_code: str, material: str, commitment: str,
           deadline: datetime, now: datetime) -> MaterialCommitment:
    """容缺承诺: the project unit commits to supply a missing required material the guide
    tolerates, by a deadline no more than 90 days ahead. The matter's first open
    commitment stops the count of its running clocks."""
    _require_visible(session, actor, project)
    if not _is_owner(actor, project):
        raise Forbidden("容缺承诺由项目单位作出 (the project unit makes the commitment)")
    pm = _matter(session, project, matter_code)
    runtime.lock_matter(session, pm, now=now)  # the matter's status is checked as it stands under the lock
    if pm.status not in projects.OPEN_MATTER_STATUSES:  # materials only for an open matter
        raise Conflict(f"事项已结束，不能作出承诺 (the matter has ended: {pm.status})")
    if pm.accepted_at is not None:
        raise Conflict("事项已受理，容缺承诺须在受理前作出 (a commitment is made before acceptance)")
    item = _guide_item(session, pm, material)
    if not item.get("required"):
        raise Invalid.field("material", "非必要材料无需容缺承诺 (the material is not required)")
    if not item.get("gap_tolerable"):
        raise Invalid.field("material", "办事指南未允许此材料容缺 (the guide does not tolerate this material's gap)")
    text = (commitment or "").strip()
    if not text or len(text) > MAX_COMMITMENT_CHARS:
        raise Invalid.field("commitment", f"承诺内容须为1至{MAX_COMMITMENT_CHARS}个字符 (1..{MAX_COMMITMENT_CHARS} characters)")
    if deadline.tzinfo is None:
        raise Invalid.field("deadline", "须带时区 (must include a time zone)")
    if deadline <= now:
        raise Invalid.field("deadline", "补交期限须晚于当前时间 (the deadline must be in the future)")
    if deadline > now + timedelta(days=MAX_COMMITMENT_DAYS):
        raise Invalid.field("deadline", f"补交期限至多为{MAX_COMMITMENT_DAYS}日内 (at most {MAX_COMMITMENT_DAYS} days ahead)")
    if material in _present(session, pm):
        raise Invalid.field("material", "该材料已提交，无需承诺 (the material was already submitted)")
    open_before = _open_commitments(session, pm)
    if any(c.material == material for c in open_before):
        raise Invalid.field("material", "该材料已有未到期的承诺 (an open commitment for this material exists)")
    row = MaterialCommitment(project_matter_id=pm.id, project_code=project.project_code, matter_code=matter_code,
                             material=material, commitment=text, deadline_at=deadline, committed_at=now,
                             recorded_by=actor.username, state="open")
    session.add(row)
    session.flush()
    if not open_before:  # before the department received the matter too: its clocks will start held
        holds.hold_matter(session, pm, holds.TOLERATED_GAP, now=now)
    audit.record(session, at=now, actor=actor.username, action="material.commit", project_code=project.project_code,
                 target=f"commitment:{row.id}",
                 summary={"matter_code": matter_code, "material": material, "commitment": text,
                          "deadline": deadline.isoformat()})
    return row


def commitments_for(session: Session, actor: Actor, project: Project, *, matter_code: str | None = None, page: int,
                    page_size: int) -> tuple[list[MaterialCommitment], int]:
    """The project's commitments, oldest first (open, fulfilled and lapsed)."""
    _require_visible(session, actor, project)
    query = (select(MaterialCommitment).join(ProjectMatter, ProjectMatter.id == MaterialCommitment.project_matter_id)
             .where(ProjectMatter.project_id == project.id))
    organisation.check_filter(session, matter_code=matter_code)
    if matter_code:
        query = query.where(MaterialCommitment.matter_code == matter_code)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(MaterialCommitment.id).offset((page - 1) * page_size).limit(page_size)).all()
    return list(rows), total


def check_acceptance(session: Session, *, project_matter: ProjectMatter, now: datetime, actor: str = "platform") -> None:
    """受理: every required material on the matter's guide is submitted or covered by an
    open commitment, else 422 naming each missing one; then the submitted materials
    become ``accepted`` (final). A matter with no guide has no list to check."""
    pm = project_matter
    guide = _guide(session, pm)
    if guide is None:
        return
    present, committed = _present(session, pm), {c.material for c in _open_commitments(session, pm)}
    missing = [f"缺少必要材料：{item['name']} ({item['code']})" for item in guide.content.get("materials", ())
               if item.get("required") and item["code"] not in present and item["code"] not in committed]
    if missing:
        raise Invalid("缺少必要材料，不能受理 (required materials are missing)", {"materials": missing})
    accepted = list(session.scalars(select(Material).where(
        Material.project_id == pm.project_id, Material.matter_code == pm.matter_code, Material.status == "submitted",
        Material.material != SIGNED_DOCUMENT).order_by(Material.id)))
    for row in accepted:
        row.status = "accepted"
    if accepted:
        project = session.get(Project, pm.project_id)
        audit.record(session, at=now, actor=actor, action="material.accepted", project_code=project.project_code,
                     target=f"matter:{pm.matter_code}",
                     summary={"materials": [{"id": m.id, "material": m.material} for m in accepted],
                              "committed": sorted(committed)})


def check_correction_items(session: Session, *, project_matter: ProjectMatter, items: list[dict]) -> list[dict]:
    """补正: a correction notice may ask only for materials on the matter's guide list, each
    once, and never for one already accepted. Returns the items with each material's
    name (for the notice text); 422 names each offending item."""
    pm = project_matter
    guide = _guide(session, pm)
    present = _present(session, pm)
    problems: dict[str, list[str]] = {}
    enriched, seen = [], set()
    for index, item in enumerate(items):
        field = f"correction_items.{index}.material"
        code = item.get("material")
        entry = guides.material(guide, code) if guide is not None and isinstance(code, str) else None
        if entry is None:
            problems[field] = [f"不是此事项办事指南所列的材料 (not a material on the matter's service guide): {code}"]
        elif present.get(code) == "accepted":
            problems[field] = [f"该材料已受理，不能要求补正 (the material was already accepted): {entry['name']}"]
        elif code in seen:
            problems[field] = [f"重复要求补正同一材料 (the same material twice): {entry['name']}"]
        else:
            seen.add(code)
            enriched.append({**item, "name": entry["name"]})
    if problems:
        raise Invalid("补正材料有误 (the correction items are invalid)", problems)
    return enriched


def due_commitments(session: Session, *, now: datetime, limit: int = 100) -> list[int]:
    """Ids of the open commitments whose deadline has passed, oldest deadline first (read
    without locks: ``lapse`` takes each under its matter's locks and looks again)."""
    return list(session.scalars(select(MaterialCommitment.id)
                                .where(MaterialCommitment.state == "open", MaterialCommitment.deadline_at < now)
                                .order_by(MaterialCommitment.deadline_at, MaterialCommitment.id).limit(limit)))


def lapse(session: Session, commitment_id: int, *, now: datetime, actor: str = "sweep") -> MaterialCommitment | None:
    """容缺: a commitment still open after its deadline (the instant itself is still in time)
    lapses at the deadline. While the
    department handles the matter, that ends the matter (``terminated``); before it
    received the matter, only the gap ends (its clocks will count).

    The matter's locks come first (``runtime.lock_matter``), then the commitment is read
    again: an upload supplying it, the matter concluding, or another sweeper lapsing it
    meanwhile is seen, and nothing is lapsed or terminated twice. None when nothing lapsed."""
    commitment = session.get(MaterialCommitment, commitment_id)
    if commitment is None or commitment.state != "open":
        return None
    pm = session.get(ProjectMatter, commitment.project_matter_id)
    runtime.lock_matter(session, pm, now=now)
    session.refresh(commitment)
    if commitment.state != "open" or commitment.deadline_at >= now:  # supplied by 17:00 is in time at 17:00
        return None
    commitment.state, commitment.closed_at = "lapsed", commitment.deadline_at
    audit.record(session, at=now, actor=actor, action="material.commitment_lapsed",
                 project_code=commitment.project_code, target=f"commitment:{commitment.id}",
                 summary={"matter_code": commitment.matter_code, "material": commitment.material,
                          "deadline": commitment.deadline_at.isoformat()})
    if pm.status == "handling":
        runtime.terminate_matter(session, pm, now=now, actor="platform",
                                 reason=f"容缺材料“{commitment.material}”逾期未补交 (committed material not supplied by the deadline)")
    else:
        end_gap_if_closed(session, pm, now=now)
    return commitment
