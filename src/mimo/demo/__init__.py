"""``mimo demo``: the MiMo family rebuilt at toy scale (:mod:`.family` drives, :mod:`.stages` runs each stage,
:mod:`.report` writes the tables and plots)."""
