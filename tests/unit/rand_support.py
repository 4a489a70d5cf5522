"""A ward laptop and its hub for randomization tests: lists made at the hub, delivered in its bundles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import card_of, connect, make_hub, open_
from trial_staff import Recorder, Templates, trial_model, ward_marked
from wardcrf.sync import hub, ward
from wf_support import Staff, _copy_site

from wardcrf.engine import model
from wardcrf.randomization import service
from wardcrf.site import Session, Site

__all__ = ["site"]


@pytest.fixture
def site(request: pytest.FixtureRequest, data_dir: Path, _wf_template, trial_templates: Templates) -> Site:
    """The fixture site (MEXCOVID, `clinician2` added), or a ward started on the trial a test names with
    `@pytest.mark.ward("palm007")`: a list is taken by participants of the protocol it was made from (the
    ward refuses a list whose arms the participant's version does not plan)."""
    protocol = ward_marked(request)
    if protocol is None:
        return _copy_site(_wf_template[0], data_dir)
    return trial_templates.copy(protocol, data_dir)


def blinded_two_to_one() -> model.Model:
    """PALM007 made 2:1 (tecovirimat:placebo) with blocks of 3 and 6: the issue's blinded 2:1 protocol."""
    source = model.shipped_source("palm007.toml")
    source = source.replace("ratio = 1                                  # 1:1 [P]", "ratio = 2")
    source = source.replace("block_sizes = [2, 4]", "block_sizes = [3, 6]")
    return model.parse(source, "palm007-2to1.toml")


def open_four_source() -> str:
    """PALM (1:1:1:1, stratified by site and baseline Ct) with the Ct factor asked at randomization.

    The fixture ward records MEXCOVID's forms, which have no Ct: PALM's own
    `when` (screening.ct_np) can never be computed there, so these tests state
    the level, as a protocol saying `asked = true` allows. On a PALM ward
    (`@pytest.mark.ward("palm")`) the screening gives it; a level stated must agree.
    """
    source = model.shipped_source("palm.toml")
    marker = 'code = "ct_np"\n'
    assert marker in source
    return source.replace(marker, marker + "asked = true\n", 1)


PALM_STRATA = """[[strata]]
code = "ct_np"
label = "Baseline viral load (nucleoprotein Ct)"
levels = [
  { code = "HIGH", label = "Ct 22 or less (high viral load)", when = "screening.ct_np <= 22" },
  { code = "LOW", label = "Ct above 22", when = "screening.ct_np > 22" },
]
"""


def palm_with_strata(strata: str, stratify_by: str) -> str:
    """Shipped PALM with its [[strata]] and `stratify_by` replaced."""
    source = model.shipped_source("palm.toml")
    assert PALM_STRATA in source
    source = source.replace(PALM_STRATA, strata)
    old = 'stratify_by = ["site", "ct_np"]'
    assert old in source
    return source.replace(old, f"stratify_by = {stratify_by}")


SEX_AND_AGE = """[[strata]]
code = "sex"
label = "Sex"
field = "screening.sex"
levels = [ { code = "M", label = "Male" }, { code = "F", label = "Female" } ]

[[strata]]
code = "age_band"
label = "Age at screening"
levels = [
  { code = "OLD", label = "60 or more", when = "screening.age >= 60" },
  { code = "YOUNG", label = "Under 60", when = "screening.age < 60" },
]
"""
OPEN_FOUR = model.parse(open_four_source(), "palm-ct-asked.toml")


@dataclass
class Trial:
    """The fixture site (WUH01, one user per role) as the ward laptop, registered at a fresh hub."""

    ward_site: Site
    hub_site: Site
    wf: Staff
    tmp: Path
    rec: Recorder | None = None
    """The trial's own forms, on a ward started on PALM or PALM007 (`@pytest.mark.ward`)."""
    device: str = ""
    _stick: int = field(default=0)

    def hub_session(self, user: str = "coordinator") -> Session:
        return open_(self.hub_site, user)

    def make(self, protocol: model.Model, per_stratum: int = 8) -> service.Made:
        """Make a list at the hub for the ward laptop and deliver it in a real hub bundle.

        A blinded list needs the laptop's unblinding key at the hub: the fixture
        publishes it (`publish_unblinding_key`).
        """
        with ledger(self.hub_site, "coordinator") as (hs, wards):  # a PostgreSQL hub's wards' data: `wards`
            made = service.make_list(hs, protocol, "WUH01", self.device, per_stratum, wards=wards)
        self.deliver()
        return made

    def publish_unblinding_key(self) -> None:
        """The investigator's first sign-in on the ward makes the laptop's unblinding key; a ward bundle carries it."""
        open_(self.ward_site, "investigator").close()
        send_ward_bundle(self)
        assert self.hub_knows_unblinding_key()

    def hub_knows_unblinding_key(self) -> bool:
        with ledger(self.hub_site, "coordinator") as (_hs, wards):
            return (
                wards.one("SELECT 1 FROM rand_unblinding_keys WHERE device = ?", (self.device,)) is not None
            )

    def deliver(self) -> list[str]:
        """Every hub bundle waiting for the ward, imported on the ward."""
        self._stick += 1
        stick = self.tmp / f"stick{self._stick}"
        stick.mkdir()
        hs = self.hub_session("admin")
        try:
            files = hub.outbound_files(hs, self.device, stick)
        finally:
            hs.close()
        s = open_(self.ward_site)
        try:
            return [ward.import_file(s, f) for f in files]
        finally:
            s.close()

    def participant(self) -> str:
        """A new participant the ward may randomize: consented (and, on a PALM ward, screened eligible)."""
        return self.wf.consent() if self.rec is None else self.rec.eligible()


@pytest.fixture
def trial(request: pytest.FixtureRequest, site: Site, session_for, tmp_path: Path) -> Trial:
    t = _registered(request, site, session_for, tmp_path)
    t.publish_unblinding_key()
    return t


@pytest.fixture
def bare_trial(request: pytest.FixtureRequest, site: Site, session_for, tmp_path: Path) -> Trial:
    """A ward registered at a hub, before any investigator signed in on it (no unblinding key yet)."""
    return _registered(request, site, session_for, tmp_path)


def _registered(request: pytest.FixtureRequest, site: Site, session_for, tmp_path: Path) -> Trial:
    protocol = ward_marked(request)
    trial = None if protocol is None else trial_model(protocol)
    h = make_hub(tmp_path, trial)  # its protocol the ward's: a hub bundle carries the hub's versions
    connect(site, h)
    rec = None if protocol is None else Recorder(session_for, tmp_path / "pages")
    t = Trial(site, h, Staff(session_for, tmp_path / "pages"), tmp_path, rec=rec)
    t.device = card_of(site).device
    return t


def send_ward_bundle(t: Trial) -> None:
    """Every bundle the ward has not sent yet, imported at the hub (each must apply)."""
    from wardcrf.sync import hub, ward

    s = open_(t.ward_site)
    out = t.tmp / f"out{t._stick}"
    out.mkdir(exist_ok=True)
    try:
        files = ward.export(s, out).files
    finally:
        s.close()
    hs = t.hub_session("admin")
    try:
        for f in files:
            if f.name.endswith(".tar.age"):
                assert hub.import_file(hs, f).ok
    finally:
        hs.close()


PW = "test-password-1"


def unblind(session: Session, participant: str, **kw: object) -> service.Unblinding:
    """An emergency unblinding with a valid reason, text, signature and witness, unless `kw` says otherwise."""
    args: dict = {
        "reason": "sae_management",
        "detail": "Serious adverse event: the treating team needs the arm",
        "password": PW,
        "witness": "clinician2",
        "witness_password": PW,
    }
    args.update(kw)
    return service.unblind(session, participant, **args)
