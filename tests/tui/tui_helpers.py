"""Helpers for driving the app in Pilot tests."""

from __future__ import annotations

PASSWORD = "test-password-1"


async def settle(pilot) -> None:
    """Let workers finish and the screen redraw."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def sign_in(pilot, user: str, password: str = PASSWORD) -> None:
    await pilot.press(*user, "enter")
    await pilot.press(*password, "enter")
    await settle(pilot)
