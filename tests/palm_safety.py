"""A test protocol: PALM with a post-infusion check and a DSMB review of serious AEs (issue 17).

PALM's published protocol has neither form, so the shipped `palm.toml` declares
neither `[safety] check` nor `dsmg_review`. This derivation (tests only, never
shipped) adds them so the engine's running of both can be tested on a ward of a
format-2 trial: a multiple-choice question asked after each infusion (a dose
assessment, `after`), each reaction named expecting an AE form with that
prespecified code, and a review form naming the SAE it judges. The names are
deliberately not format 1's (`post_dose_check`, `dsmg_ae_review`, `events`,
`ae_event`, `dose`): the engine must go by the declaration.
"""

from __future__ import annotations

from wardcrf.engine import model

CHECK_FORM = "post_infusion_check"
REVIEW_FORM = "dsmb_sae_review"

SAFETY = """ae_link = "infusion"
check = { form = "post_infusion_check", field = "reactions", none = "nothing", link = "infusion", expect_ae = true }
dsmg_review = { form = "dsmb_sae_review", ae_field = "sae", relatedness = "judged", unexpected = "unexpected" }
"""

ADDED = """

[[dose_assessments]]
code = "post_infusion_check"
form = "post_infusion_check"
label = "post-infusion check"
when = "after"
link = "infusion"

[forms.post_infusion_check]
label = { en = "After the infusion: prespecified reactions", fr = "Après la perfusion : réactions prédéfinies" }
help = { en = "Asked after every infusion: nothing, or which reactions occurred (then record each as an AE)." }

[forms.post_infusion_check.fields.infusion]
type = "integer"
required = true
hard = [1, 20]
label = { en = "Infusion number", fr = "Numéro de la perfusion" }

[forms.post_infusion_check.fields.asked_at]
type = "datetime"
default = "now"
required = true
label = { en = "Time asked", fr = "Heure de la question" }

[forms.post_infusion_check.fields.reactions]
type = "choice"
multiple = true
required = true
label = { en = "Reactions observed", fr = "Réactions observées" }
choices = [
  { code = "nothing", label = { en = "None", fr = "Aucune" } },
  { code = "infusion_reaction", label = { en = "Infusion-related reaction", fr = "Réaction liée à la perfusion" } },
]

[forms.dsmb_sae_review]
label = { en = "DSMB review of a serious adverse event", fr = "Revue d'un EIG par le DSMB" }

[forms.dsmb_sae_review.fields.sae]
type = "text"
required = true
label = { en = "Serious adverse event (record)", fr = "Événement indésirable grave (enregistrement)" }

[forms.dsmb_sae_review.fields.judged]
type = "choice"
required = true
label = { en = "Relatedness", fr = "Lien de causalité" }
choices = [
  { code = "related", label = { en = "Related", fr = "Lié" } },
  { code = "not_related", label = { en = "Not related", fr = "Non lié" } },
]

[forms.dsmb_sae_review.fields.unexpected]
type = "choice"
required = true
label = { en = "Unexpected", fr = "Inattendu" }
choices = [
  { code = "yes", label = { en = "Yes", fr = "Oui" } },
  { code = "no", label = { en = "No", fr = "Non" } },
]
"""


def source() -> str:
    """palm.toml with the check and the review declared (and their forms)."""
    palm = model.shipped_source("palm.toml")
    assert palm.count('ae_link = "infusion"\n') == 1, (
        "palm.toml's [safety] changed: update tests/palm_safety.py"
    )
    return palm.replace('ae_link = "infusion"\n', SAFETY, 1) + ADDED


def trial() -> model.Model:
    return model.parse(source(), "palm-safety.toml")
