"""The web app's pages, over the same warm indexes as the API: Ask (upload a photo, see the look-alikes of every
face in it), People (identities, or the people `lookalike cluster` found), a person's faces from most to least
representative, Review (duplicate pairs, with the reversible remove and put back of `lookalike dedup`), Hybrid (one
face of two people's characteristic parts, as `lookalike hybrid` makes it), and each indexed photo with its face's box
drawn.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import numpy as np

from lookalike.config import VISE_COSINE
from lookalike.errors import LookalikeError
from lookalike.render import face_thumbnail, image_data_uri, render_html
from lookalike.search.asking import check_k, check_mode
from lookalike.serve.guard import CSRF_FIELD, MAX_FORM_FIELDS, MAX_FORM_FILES, MAX_UPLOAD

#: People listed on the People page (the most faces first).
PEOPLE_SHOWN = 120
#: Look-alike pairs on the Review page: different people above the ViSE mining threshold (`lookalike mine-vise`).
LOOKALIKES_SHOWN = 100


def page_routes(pick, decode_upload, run, token: str, allow_paths: bool = True):
    """Routes for the pages. pick(name) -> the warm index (`Held`, refreshed); `await decode_upload(bytes, name)` ->
    RGB array; run(fn) -> awaits fn() in a worker thread; token: the per-server token every form carries;
    allow_paths False (a server other machines reach): Review shows pairs but changes nothing."""
    import secrets

    from starlette.datastructures import UploadFile
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    def page(template: str, h, **values) -> HTMLResponse:
        return HTMLResponse(render_html(template, title=f"lookalike: {h.name}", index=h.name, csrf=token, **values))

    async def posted(request: Request):
        """A page's form, refused unless it carries this server's token (a form another site made cannot)."""
        form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_UPLOAD)
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not secrets.compare_digest(sent.encode(), token.encode()):
            raise LookalikeError("this form did not come from this server's page: reload the page and try again")
        return form

    def texts_ok(h) -> bool:
        """Whether the index's head embeds text (clip): the Ask page then also takes a description."""
        from lookalike.heads.base import TEXT

        return h.searcher.head is not None and h.searcher.head.can(TEXT)

    async def ask_form(request: Request):
        h = pick(request.query_params.get("index"))
        return page("ask.html", h, k=10, mode="faces", answers=None, same=None, texts=texts_ok(h), text="")

    async def ask(request: Request):
        form = await posted(request)
        h = pick(form.get("index"))
        upload = form.get("photo")
        takes_text = texts_ok(h)
        text = str(form.get("text") or "").strip() if takes_text else ""
        k, mode = check_k(form.get("k") or 10), check_mode(str(form.get("mode") or "faces"))
        values = {"k": k, "mode": mode, "texts": takes_text, "text": text}
        has_photo = isinstance(upload, UploadFile) and bool(upload.filename)
        try:
            if not has_photo and not text:
                raise LookalikeError("choose a photo to upload" + (", or describe a face" if takes_text else ""))
            rgb = await decode_upload(await upload.read(), upload.filename or "photo") if has_photo else None
        except LookalikeError as e:
            return page("ask.html", h, answers=None, same=None, error=str(e), **values)

        def work():
            with h.lock:
                if rgb is None:
                    answers = h.searcher.query_texts([text], k=k, mode=mode)
                else:
                    answers = h.searcher.query_photos([rgb], k=k, mode=mode, all_faces=True)
            shown = []
            for a in answers:
                d = a.as_json()
                d["thumb"] = image_data_uri(a.face.crop) if a.face is not None else ""
                for m in d["results"]:
                    m["thumb"] = face_thumbnail(m["path"], m.get("box"))
                shown.append(d)
            return shown, answers[0].same_person if answers else None

        shown, same = await run(work)
        err = shown[0].get("error") if len(shown) == 1 else None
        if rgb is not None:  # the photo stays on the page beside its answers (a file field cannot keep it)
            values["asked_photo"] = await run(lambda: image_data_uri(rgb.rgb, 320))
            values["asked_name"] = rgb.stat.path
        return page("ask.html", h, answers=None if err else shown, same=same, error=err, **values)

    async def photo_page(request: Request):
        """One indexed face: its photo with the box drawn, what the index holds of it, and the way back."""
        h = pick(request.query_params.get("index"))
        vid = int(request.path_params["vector_id"])
        rec = h.searcher.face_record(vid)
        if rec is None:
            return page("people.html", h, people=[], source=None, more=0, error=f"no face with vector id {vid}")
        if not allow_paths:
            rec = {**rec, "path": Path(rec["path"]).name}
        return page("photo.html", h, face=rec, person=h.searcher.person_of(vid))

    async def photo(request: Request):
        h = pick(request.query_params.get("index"))
        rec = h.searcher.face_record(int(request.path_params["vector_id"]))
        if rec is None:
            return Response("no such face", status_code=404)

        def work() -> bytes:
            from PIL import Image, ImageDraw

            from lookalike.faces.photos import Photo, load_photo

            item = load_photo(rec["path"])
            if not isinstance(item, Photo):
                raise LookalikeError(f"{rec['path']}: {item.reason}")
            img = Image.fromarray(item.rgb)
            draw = ImageDraw.Draw(img)
            width = max(2, round(max(img.size) / 300))
            draw.rectangle([float(v) for v in rec["box"]], outline=(255, 40, 40), width=width)
            img.thumbnail((1600, 1600))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=88)
            return buf.getvalue()

        try:
            return Response(await run(work), media_type="image/jpeg")
        except LookalikeError as e:
            return Response(str(e), status_code=404)

    async def people(request: Request):
        h = pick(request.query_params.get("index"))
        if "application/json" in request.headers.get("accept", ""):  # the API: every person and their faces
            names, source = h.people()
            counts = Counter(n for n in names if n is not None)
            listed = [{"person": n, "faces": c} for n, c in counts.most_common()]
            return JSONResponse({"source": source, "people": listed})

        show_hidden = request.query_params.get("hidden") == "1"

        def work():
            names, source = h.people()
            hidden = h.searcher.hidden_people()
            counts = Counter(n for n in names if n is not None and (show_hidden or n not in hidden))
            first = {}
            for row, n in enumerate(names):
                if n is not None and n not in first:
                    first[n] = row
            s = h.searcher
            rows = [{"name": n, "faces": c, "thumb": face_thumbnail(s.path_at(first[n]), s.box_at(first[n]))}
                    for n, c in counts.most_common(PEOPLE_SHOWN)]  # fmt: skip
            n_hidden = len({n for n in names if n in hidden}) if not show_hidden else 0
            return rows, source, max(0, len(counts) - PEOPLE_SHOWN), n_hidden

        rows, source, more, n_hidden = await run(work)
        return page("people.html", h, people=rows, source=source, more=more, hidden=n_hidden)

    async def person(request: Request):
        h = pick(request.query_params.get("index"))
        name = request.path_params["name"]

        def work():
            names, _ = h.people()
            rows = [i for i, n in enumerate(names) if n == name]
            if not rows:
                return None
            vectors = h.vectors()[rows]
            mean = vectors.mean(axis=0)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            score = vectors @ mean
            order = np.argsort(-score)
            return [{"thumb": face_thumbnail(h.searcher.path_at(rows[i]), h.searcher.box_at(rows[i])),
                     "score": float(score[i]), "path": h.searcher.path_at(rows[i]),
                     "vector_id": int(h.searcher.id_at(rows[i]))} for i in order]  # fmt: skip

        faces = await run(work)
        if faces is None:
            return page("people.html", h, people=[], source=None, more=0, error=f"nobody called {name!r} here")
        names, _ = h.people()
        others = sorted({n for n in names if n is not None and n != name})
        hidden = name in h.searcher.hidden_people()
        return page("person.html", h, name=name, faces=faces, others=others, hidden=hidden, editable=allow_paths,
                    message=request.query_params.get("message"))  # fmt: skip

    def known_people(h) -> set[str]:
        names, _ = h.people()
        return {n for n in names if n is not None}

    async def person_edit(request: Request):
        """Rename, merge or hide a person (`index.people_edits`), then back to their (new) page."""
        from lookalike.index import people_edits

        changes_allowed()
        form = await posted(request)
        h = pick(form.get("index"))
        name, action = request.path_params["name"], request.path_params["action"]

        def work() -> tuple[str, str]:
            known = known_people(h)
            if action == "rename":
                to = people_edits.check_name(str(form.get("to") or ""))
                return people_edits.rename(h.path, name, to, known), to
            if action == "merge":
                into = str(form.get("into") or "")
                return people_edits.merge(h.path, name, into, known), into
            if action == "hide":
                hide = str(form.get("hidden") or "1") != "0"
                return people_edits.hide(h.path, name, known, hidden=hide), name
            raise LookalikeError(f"unknown change {action!r}")

        said, now = await run(work)
        h.searcher.refresh_people()
        return RedirectResponse(f"/people/{quote(now, safe='')}?message={quote(said)}", status_code=303)

    async def face_move(request: Request):
        from lookalike.index import people_edits

        changes_allowed()
        form = await posted(request)
        h = pick(form.get("index"))
        rec = h.searcher.face_record(int(request.path_params["vector_id"]))
        if rec is None:
            raise LookalikeError("no such face")
        to = people_edits.check_name(str(form.get("to") or ""))
        said = await run(lambda: people_edits.move_face(h.path, rec["face_id"], to))
        h.searcher.refresh_people()
        return RedirectResponse(f"/people/{quote(to, safe='')}?message={quote(said)}", status_code=303)

    async def review(request: Request):
        h = pick(request.query_params.get("index"))

        def work():
            from lookalike.curate.dedup import COPY, EXACT, SIMILAR, find_duplicates

            dups = find_duplicates(h.path)

            def side(p: str) -> dict:
                return {"path": p, "thumb": face_thumbnail(p, None, size=256)}

            def row(p) -> dict:
                return {"a": side(p.a), "b": side(p.b), "score": p.cosine, "kind": p.kind, "why": p.why}

            copies = [row(p) for p in dups.of(EXACT, COPY)[:200]]
            return copies, [row(p) for p in dups.of(SIMILAR)[:100]], dups

        def lookalikes():
            """Different labelled people whose main faces score above the ViSE threshold (`config.VISE_COSINE`),
            closest first."""
            from lookalike.curate.pairs import similar_pairs

            names = h.searcher.identities()
            labelled = [r for r, n in enumerate(names) if n is not None]
            if len(labelled) < 2:
                return []
            codes = {n: i for i, n in enumerate(sorted({names[r] for r in labelled}))}
            v = h.vectors()[labelled]
            i, j, score = similar_pairs(v, VISE_COSINE, np.array([codes[names[r]] for r in labelled]), "different")
            order = np.argsort(-score)[:LOOKALIKES_SHOWN]
            s = h.searcher

            def side(r: int) -> dict:
                return {"path": s.path_at(r), "who": names[r], "thumb": face_thumbnail(s.path_at(r), s.box_at(r))}

            return [{"a": side(labelled[i[k]]), "b": side(labelled[j[k]]), "score": float(score[k])} for k in order]

        pairs, similar, dups = await run(work)
        alike = await run(lookalikes)
        return page("review.html", h, pairs=pairs, similar=similar, threshold=dups.threshold, removed=h.removed_count(),
                    editable=allow_paths,
                    lookalikes=alike, vise_threshold=VISE_COSINE,
                    message=request.query_params.get("message"))  # fmt: skip

    def hybrid_people(h) -> list[str]:
        """People with at least 2 faces, the fewest a hybrid characterizes: most faces first."""
        names, _ = h.people()
        counts = Counter(n for n in names if n is not None)
        return [n for n, c in counts.most_common() if c >= 2]

    async def hybrid_form(request: Request):
        h = pick(request.query_params.get("index"))
        people = await run(lambda: hybrid_people(h))
        return page("hybrid_app.html", h, people=people, a=None, b=None, hy=None)

    async def hybrid(request: Request):
        form = await posted(request)
        h = pick(form.get("index"))
        a, b = str(form.get("a") or ""), str(form.get("b") or "")
        people = await run(lambda: hybrid_people(h))

        def work() -> dict:
            from lookalike import optional

            optional.require("torch", "hybrid (a metric learnt on FaceNet's feature maps)")
            optional.require("dlib", "hybrid (68 face landmarks to cut the parts)")
            from lookalike.similarity.hybrid import make_hybrid
            from lookalike.similarity.hybrid_page import page_values

            if a not in people or b not in people:
                raise LookalikeError("choose two people of this index with at least 2 faces each")
            if a == b:
                raise LookalikeError("choose two different people")
            with h.lock:
                faces = (h.searcher.faces_of_person(a), h.searcher.faces_of_person(b))
                detector = h.searcher.detector
            made = make_hybrid(list(faces[0]), list(faces[1]), names=(a, b), known=faces, detector=detector)
            return page_values(made)

        try:
            result = await run(work)
        except LookalikeError as e:
            return page("hybrid_app.html", h, people=people, a=a, b=b, hy=None, error=str(e))
        return page("hybrid_app.html", h, people=people, a=a, b=b, hy=result)

    def changes_allowed() -> None:
        if not allow_paths:
            raise LookalikeError("this server listens beyond this machine: it changes nothing from there")

    async def review_remove(request: Request):
        changes_allowed()
        form = await posted(request)
        h = pick(form.get("index"))
        keep, drop = _form_path(form.get("keep")), _form_path(form.get("drop"))

        def work() -> int:
            from lookalike.curate.dedup import find_duplicates, remove_duplicates

            if not keep or not drop or keep == drop:
                raise LookalikeError("a pair needs a photo to keep and another to remove")
            dups = find_duplicates(h.path)  # only a pair the finder calls copies may lose a photo: never a similar shot
            pair = dups.removable().get(frozenset((keep, drop)))
            if pair is None:
                raise LookalikeError("that pair is not among the copies found: nothing was removed")
            with h.lock:
                n = remove_duplicates(h.path, [{"path": drop, "kept_path": keep, "score": 1.0,
                                                "reason": f"{pair.kind} (removed in review)"}])  # fmt: skip
            h.refresh()
            return n

        n = await run(work)
        return RedirectResponse(f"/review?message={quote(f'removed {n} photo: {drop}')}", status_code=303)

    async def review_restore(request: Request):
        changes_allowed()
        form = await posted(request)
        h = pick(form.get("index"))

        def work() -> int:
            from lookalike.curate.dedup import restore_removed

            with h.lock:
                n = restore_removed(h.path)
            h.refresh()
            return n

        try:
            n = await run(work)
            message = f"put back {n} photos"
        except LookalikeError as e:
            message = str(e)
        return RedirectResponse(f"/review?message={quote(message)}", status_code=303)

    return [
        Route("/", ask_form),
        Route("/ask", ask, methods=["POST"]),
        Route("/photo/{vector_id:int}", photo_page),
        Route("/photo/{vector_id:int}/image", photo),
        Route("/people", people),
        Route("/people/{name:path}/{action:str}", person_edit, methods=["POST"]),
        Route("/people/{name:path}", person),
        Route("/faces/{vector_id:int}/move", face_move, methods=["POST"]),
        Route("/hybrid", hybrid_form),
        Route("/hybrid", hybrid, methods=["POST"]),
        Route("/review", review),
        Route("/review/remove", review_remove, methods=["POST"]),
        Route("/review/restore", review_restore, methods=["POST"]),
    ]


def _form_path(value: object) -> str:
    """A photo path from Review's form: JSON text there (a browser turns a newline inside a plain form value into
    CR LF, which names another file), or the bare path a program sends."""
    import json

    text = str(value or "")
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except ValueError:
            return text
        return decoded if isinstance(decoded, str) else text
    return text
