"""Department data (部门信息比对): lists from civil affairs, education, medical insurance, housing,
human resources and the disabled persons' federation, matched to the register."""
