"""The form-definition language of fieldsync: definitions, expressions, submission validation,
register bindings, XLSForm import and the bundled household-visit forms.

Plain Python that a tablet could import: never imports Flask, SQLAlchemy or anything server-side.
"""
