"""The append-only log of every field change to the register: pull cursors, history, audit."""
