"""HTTP API over a :class:`RunRecommender` (FastAPI; OpenAPI page at ``/docs``).

- ``GET /health`` -> model, dataset, users, items;
- ``GET /recommend/{user_id}?k=10`` -> one recommendation; unknown user 404, bad k 422;
- ``POST /recommend`` with ``{"users": [...], "k": 10}`` -> a list, in request order; with
  ``{"history": ["item", ...], "k": 10}`` instead -> one recommendation for a user the model was
  not trained on, folded in from those items (unknown item ids 422 naming them, an empty history
  popularity, a model without fold-in 501);
- ``POST /users/{user_id}/history`` with ``{"items": [...]}`` -> appends interactions to a known
  user's history (in memory): its recommendations follow them from then on;
- ``POST /items`` with ``{"items": [{"id": "x", "features": {"image": [...], ...}, "title": "..."}]}``
  -> adds new items from their features (as ``siger add-items``: persisted in the run folder,
  ranked from then on); only when the server was started with ``allow_add_items`` (403 otherwise),
  bad input 422 with the reason.
"""

# No `from __future__ import annotations` here: FastAPI must see the real (locally defined)
# request/response classes, not strings it cannot resolve.
from siger.serve.recommender import MAX_HISTORY, HistoryError, RunRecommender, UnknownUserError

MAX_K = 1000
MAX_BATCH = 10_000


def create_app(rec: RunRecommender, allow_add_items: bool = False, workers: int = 1):
    """The app over one loaded run. Responses are built as plain dicts and serialised by orjson
    (when installed), handed back as a ready response: FastAPI would otherwise walk every dict
    again (``jsonable_encoder``: 80 ms for a 1,000-user answer, more than the ranking); the
    response models document the API (OpenAPI) without validating every answer again. ``workers`` > 1: appended histories would live in one worker only, so that
    endpoint answers 409."""
    from siger.extras import require

    require("fastapi", "serve")
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, Field

    try:
        import orjson

        class Fast(Response):  # plain dicts to JSON bytes by orjson
            media_type = "application/json"

            def render(self, content) -> bytes:
                return orjson.dumps(content)
    except ImportError:
        Fast = JSONResponse

    max_k = min(MAX_K, rec.n_items)

    class Item(BaseModel):
        item: str
        score: float | None = None  # the model's score; None for popularity-fallback items
        title: str | None = None
        popularity: int | None = None  # train interactions of the item (popularity-fallback items only)

    class Rec(BaseModel):
        user: str
        items: list[Item]
        fallback: str | None = Field(None, description="'popularity' for users with no history")

    class NewItem(BaseModel):
        id: str
        features: dict[str, list[float]]
        title: str | None = None

    class AddItems(BaseModel):
        items: list[NewItem] = Field(..., min_length=1, max_length=MAX_BATCH)

    class BatchRequest(BaseModel):
        users: list[str] | None = Field(None, min_length=1, max_length=MAX_BATCH)
        history: list[str] | None = Field(None, max_length=MAX_HISTORY, description="a new user's items")
        k: int = Field(10, ge=1, le=max_k)

    class Append(BaseModel):
        items: list[str] = Field(..., min_length=1, max_length=MAX_HISTORY)

    app = FastAPI(title="siger recommendations", version="1", default_response_class=Fast,
                  description=f"{rec.model_name} on {rec.dataset}: top-k unseen items per user.")

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "model": rec.model_name, "dataset": rec.dataset,
                "users": rec.n_users, "items": rec.n_items}

    # unset fields are left out: "popularity" only on fallback items, "title" only where the dataset has titles
    @app.get("/recommend/{user_id}", response_model=None, responses={200: {"model": Rec}})
    async def recommend_one(user_id: str, k: int = Query(10, ge=1, le=max_k)):
        # async: sub-millisecond work runs in the event loop, not through the thread pool
        try:
            return Fast(rec.recommend([user_id], k)[0])
        except UnknownUserError as e:
            raise HTTPException(status_code=404, detail=e.args[0]) from None

    class NewUserRec(BaseModel):
        user: str | None = None
        items: list[Item]
        fallback: str | None = None

    @app.post("/recommend", response_model=None, responses={200: {"model": list[Rec] | NewUserRec}})
    async def recommend_batch(req: BatchRequest):
        from siger.models.newusers import NewUsersUnsupported

        if (req.users is None) == (req.history is None):
            raise HTTPException(status_code=422, detail="give either 'users' (known users) or 'history' (a new user)")
        if req.history is not None:
            try:
                return Fast(rec.recommend_history(req.history, req.k))
            except HistoryError as e:
                raise HTTPException(status_code=422, detail=str(e)) from None
            except NewUsersUnsupported as e:
                raise HTTPException(status_code=501, detail=str(e)) from None
        unknown = [u for u in req.users if u not in rec.user_index]
        if unknown:
            raise HTTPException(status_code=404, detail=f"unknown users {unknown[:20]}")
        return Fast(rec.recommend(req.users, req.k))

    @app.post("/users/{user_id}/history")
    async def append_history(user_id: str, req: Append):
        from siger.models.newusers import NewUsersUnsupported

        if workers > 1:
            raise HTTPException(status_code=409, detail="appended histories need one server worker (--workers 1)")
        try:
            n = rec.append_history(user_id, req.items)
        except UnknownUserError as e:
            raise HTTPException(status_code=404, detail=e.args[0]) from None
        except HistoryError as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        except NewUsersUnsupported as e:
            raise HTTPException(status_code=501, detail=str(e)) from None
        return {"user": user_id, "history": n}

    @app.post("/items")
    def add_items(req: AddItems):
        import numpy as np

        from siger.data.validate import DataError

        if not allow_add_items:
            raise HTTPException(status_code=403, detail="adding items is disabled: start the server with "
                                                        "--allow-add-items")
        mods = sorted(req.items[0].features)
        if any(sorted(it.features) != mods for it in req.items):
            raise HTTPException(status_code=422, detail=f"every item needs features for the same modalities {mods}")
        try:
            feats = {m: np.array([it.features[m] for it in req.items], dtype=np.float32) for m in mods}
        except ValueError:
            raise HTTPException(status_code=422, detail="features of one modality must have one width") from None
        titles = [it.title or "" for it in req.items] if any(it.title for it in req.items) else None
        before = rec.n_items
        try:
            total = rec.add_items([it.id for it in req.items], feats, titles, where="POST /items")
        except (DataError, ValueError) as e:
            raise HTTPException(status_code=422, detail=str(e)) from None
        return {"added": total - before, "items": total}

    return app


def serve(run_dir: str, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          allow_add_items: bool = False, workers: int = 1) -> None:
    """Serve a run folder; ``workers`` processes each load the run and answer on one port."""
    import os

    from siger.extras import require

    uvicorn = require("uvicorn", "serve")
    if workers > 1 and allow_add_items:
        raise ValueError("--allow-add-items needs one worker: each worker holds its own copy of the catalogue")
    os.environ.update(SIGER_SERVE_RUN=str(run_dir), SIGER_SERVE_ADD_ITEMS="1" if allow_add_items else "",
                      SIGER_SERVE_WORKERS=str(workers))
    uvicorn.run("siger.serve.api:app_from_env", factory=True, host=host, port=port, log_level=log_level,
                workers=workers)


def app_from_env():
    """The app factory each server worker calls (run folder and options from the environment)."""
    import os

    import torch

    from siger.serve.recommender import load_run

    workers = int(os.environ.get("SIGER_SERVE_WORKERS", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))  # the cores shared among workers
    return create_app(load_run(os.environ["SIGER_SERVE_RUN"]), bool(os.environ.get("SIGER_SERVE_ADD_ITEMS")),
                      int(os.environ.get("SIGER_SERVE_WORKERS", "1")))
