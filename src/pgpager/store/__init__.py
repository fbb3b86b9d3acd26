"""The storage layer: the only code that talks SQL. Driver errors become domain errors here."""
