"""Early warning (预警): risk rules over the register and department data, and the warnings they
raise on households."""
