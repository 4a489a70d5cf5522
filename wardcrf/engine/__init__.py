"""The trial engine (issue 17): protocol files of format 2 as an immutable model, and its pure parts.

`model` reads and validates a format-2 file (docs/protocol.md) into a frozen
`Model`; `expressions` is the expression language's parser and checker;
`schedule` computes, from the model, a participant's anchors and what was
recorded, what is due now. Nothing here touches the store, Textual or the
clock: the caller passes `now`. What is built and what is still design is
stated in docs/engine.md.
"""
