"""The test project's WAMP router: site users join as themselves through their Django session."""

from consumers.wamp import Realm, Router
from consumers.wamp.auth.django import DjangoUser, django_authorizer
from consumers.wamp.roles import Permission, Role


def needed_permission(uri: str, action: str) -> str | None:
    """Editors may call the admin procedures if Django lets them view users."""
    return "auth.view_user" if action == "call" and uri.startswith("com.site.admin.") else None


wamp_router = Router(
    realms=[
        Realm(
            "site",
            roles=[
                Role("editors", authorizer=django_authorizer(needed_permission)),
                Role("authenticated", [Permission("com.site.echo", call=True)]),
            ],
            auth=[DjangoUser()],
        )
    ]
)


@wamp_router.register("site", "com.site.admin.ping")
def ping() -> str:
    """An admin procedure."""
    return "pong"


@wamp_router.register("site", "com.site.echo")
def echo(value: str) -> str:
    """A procedure for every logged-in user."""
    return value
