"""People who use fieldsync: their roles and the regions granted to them."""
