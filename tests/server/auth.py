"""The custom auth of the server tests: a ``langgraph_sdk.Auth`` object, as the reference
server reads it. Tokens "user-<name>" sign in <name>; each user sees only their own
threads; "bad" is refused with 403 at authentication."""

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> dict:
    if not authorization or not authorization.startswith("Bearer user-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="Sign in first.")
    name = authorization.removeprefix("Bearer user-")
    user = {"identity": name, "permissions": ["finance"] if name == "alice" else []}
    if name == "alice":
        user["team"] = "payments"
    return user


@auth.on.threads.create
async def stamp_owner(ctx: Auth.types.AuthContext, value: dict) -> None:
    metadata = value.setdefault("metadata", {})
    metadata["owner"] = ctx.user.identity
    if "team" in ctx.user:  # the SDK's BaseUser protocol: `in`, iteration, [key]
        metadata["team"] = ctx.user["team"]
        metadata["user_keys"] = sorted(ctx.user)


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: dict) -> dict:
    return {"owner": ctx.user.identity}


@auth.on.assistants.create
async def no_new_assistants(ctx: Auth.types.AuthContext, value: dict) -> bool:
    return False


@auth.on.store
async def scope_store(ctx: Auth.types.AuthContext, value: dict) -> None:
    value["namespace"] = (ctx.user.identity, *value["namespace"])
