"""A second protocol with a scored grid, for the generic section grid (issue 17): no MEXCOVID anywhere.

PALM's shipped format-2 file as a trial of its own (id GRIDTEST), with one more form: a daily symptom
score of two sections of three scored symptoms each (0 none to 3 severe, or `u` when it cannot be
assessed), a subtotal per section and the form's total by its `compute`. Nothing in wardcrf names this
form or its fields: the grid on screen, its checks at load and its save come from this declaration only.
"""

from __future__ import annotations

from wardcrf.engine import model

SECTIONS = """
[[forms.symptoms.sections]]
code = "general"
label = { en = "General", fr = "Général" }
sum = true
fields = ["fever", "fatigue", "headache"]

[[forms.symptoms.sections]]
code = "digestive"
label = { en = "Digestive", fr = "Digestif" }
sum = true
fields = ["nausea", "vomiting", "diarrhoea"]
"""

SCORE = (
    'type = "choice"\nrequired = true\nchoices = [{ code = 0, label = "0 none" }, { code = 1, label = "1 mild" }, '
    '{ code = 2, label = "2 moderate" }, { code = 3, label = "3 severe" }, '
    '{ code = "u", label = { en = "cannot be assessed", fr = "non évaluable" } }]\n'
)
SYMPTOMS = {
    "fever": "Fever",
    "fatigue": "Fatigue",
    "headache": "Headache",
    "nausea": "Nausea",
    "vomiting": "Vomiting",
    "diarrhoea": "Diarrhoea",
}
APPETITE = (
    '\n[forms.symptoms.fields.appetite]\ntype = "choice"\nlabel = "Appetite"\n'
    'choices = [{ code = "normal", label = "normal" }, { code = "reduced", label = "reduced" }]\n'
)
"""A field of the form outside the grid (a sum over it is refused: its codes are no numbers)."""
TOTAL = "sum(" + ", ".join(SYMPTOMS) + ")"


def form_text(sections: str = SECTIONS) -> str:
    fields = "".join(
        f'\n[forms.symptoms.fields.{name}]\n{SCORE}label = "{label}"\n' for name, label in SYMPTOMS.items()
    )
    return (
        '\n[forms.symptoms]\nlabel = { en = "Daily symptom score", fr = "Score des symptômes" }\n'
        + sections
        + '\n[forms.symptoms.fields.date]\ntype = "date"\ndefault = "today"\nrequired = true\nlabel = "Date"\n'
        + fields
        + APPETITE
        + f'\n[forms.symptoms.fields.total]\ntype = "integer"\ncompute = "{TOTAL}"\n'
        'label = { en = "Symptom total (0-18)", fr = "Total des symptômes (0-18)" }\n'
    )


def source(sections: str = SECTIONS) -> str:
    """The protocol's TOML, with `sections` as the symptom form's sections (a hostile test's variant)."""
    base = model.shipped_source("palm.toml").replace('id = "PALM"', 'id = "GRIDTEST"', 1)
    return base + form_text(sections)


def parsed() -> model.Model:
    return model.parse(source(), "gridtest.toml")
