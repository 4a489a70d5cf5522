"""Helpers for driving the app in Pilot tests."""

from __future__ import annotations

PASSWORD = "test-password-1"


INTERACTIVE = {"form-save", "dsmg-decide", "sync-answer", "background-sync"}
"""Worker groups that wait for a person (a dialog), or run until the app stops (background
sync): never waited for here."""


async def settle(pilot) -> None:
    """Let background work finish and the screen redraw."""
    for _ in range(3):
        await pilot.pause()
        busy = [w for w in pilot.app.workers if w.group not in INTERACTIVE and not w.is_finished]
        if busy:
            await pilot.app.workers.wait_for_complete(busy)
    await pilot.pause()


async def sign_in(pilot, user: str, password: str = PASSWORD) -> None:
    await pilot.press(*user, "enter")
    await pilot.press(*password, "enter")
    await settle(pilot)


def page_photo(path) -> str:
    """A generated consent-page photo on disk; returns the `@path` a field accepts."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (320, 240), "white")
    ImageDraw.Draw(img).text((10, 10), "consent page 1", fill="black")
    img.save(path, "JPEG")
    return f"@{path}"


def enroll(site, tmp_path, *, enrolled_on: str = "2020-03-15") -> str:
    """Consent, screen, enroll and skin-test one participant through the services."""
    from wardcrf import workflow

    s = site.unlock("clinician", PASSWORD)
    try:

        def pw(_user: str) -> str:
            return PASSWORD

        ev = workflow.submit(
            s,
            "consent",
            {
                "consenter": "participant",
                "form_version": "1.0",
                "time": "2020-03-10T10:00:00+08:00",
                "witness_1": "investigator",
                "witness_2": "clinician2",
                "photos": page_photo(tmp_path / "page.jpg"),
            },
            password_for=pw,
        )
        pid = ev.subject.removeprefix("participant:")
        workflow.submit(
            s,
            "screening",
            {
                "date": "2020-03-11",
                "dob": "1965-05-01",
                "sex": "M",
                "pcr_confirmed": "yes",
                "severity": "severe",
            },
            participant=pid,
        )
        workflow.submit(s, "enrollment", {"date": enrolled_on}, participant=pid)
        workflow.submit(
            s, "skin_test", {"time": f"{enrolled_on}T15:00:00+08:00", "result": "negative"}, participant=pid
        )
        return pid
    finally:
        s.close()
