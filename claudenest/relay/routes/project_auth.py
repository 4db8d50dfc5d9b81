"""Who is calling a project-scoped route: the project's owner (personal access token or dashboard cookie) or one of
the project's Claude instances (``Authorization: Bearer ci_...``).

An instance token reaches only its own project: any other project id is answered 404, exactly as for a project that
does not exist, and user-only routes (creating or deleting projects, registering instances) answer 403. Every
request made with an instance token counts as that instance's heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from claudenest import tokens
from claudenest.errors import AuthError, Forbidden, NotFound
from claudenest.relay import sweeper
from claudenest.relay.auth import authenticate_user, bearer
from claudenest.store import Store
from claudenest.store.activity import Actor


@dataclass(frozen=True)
class ProjectCaller:
    user_id: str
    project: dict[str, Any]
    instance: dict[str, Any] | None
    email: str = ""

    @property
    def actor(self) -> Actor:
        if self.instance is not None:
            return Actor(self.instance["name"], self.instance["id"])
        return Actor(self.email or self.user_id)

    def need_instance(self, what: str) -> dict[str, Any]:
        if self.instance is None:
            raise Forbidden(f"{what} needs an instance token (ci_...): register one with POST .../instances")
        return self.instance

    def need_user(self, what: str) -> None:
        if self.instance is not None:
            raise Forbidden(f"{what} needs the project owner's personal access token, not an instance token")

    def need_self_or_user(self, instance_id: str, what: str) -> None:
        if self.instance is not None and self.instance["id"] != instance_id:
            raise Forbidden(f"only the instance itself or the project owner can {what}")


async def instance_for_token(store: Store, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The live instance of a ``ci_`` token and its project (the request counts as the instance's heartbeat);
    401 when the token is revoked or unknown."""
    found = await store.instances.by_token_with_project(tokens.hash_token(token))
    if found is None:
        raise AuthError("invalid instance token")
    instance, project = found
    if instance["status"] == "ended":
        raise AuthError(f"instance {instance['name']} has ended; its token is revoked")
    return await store.instances.touch(instance, sweeper.HEARTBEAT_WRITE_SECONDS), project


async def get_project_caller(request: Request, project_id: str) -> ProjectCaller:
    store: Store = request.app.state.store
    token = bearer(request)
    if token is not None and token.startswith(tokens.INSTANCE_PREFIX):
        instance, project = await instance_for_token(store, token)
        if project["id"] != project_id:
            raise NotFound(f"no project {project_id}")
        return ProjectCaller(user_id=instance["user_id"], project=project, instance=instance)
    caller = await authenticate_user(request, store)
    project = await store.projects.get(project_id, caller.user["id"])
    return ProjectCaller(user_id=caller.user["id"], project=project, instance=None, email=caller.user["email"])


ProjectCallerDep = Annotated[ProjectCaller, Depends(get_project_caller)]
