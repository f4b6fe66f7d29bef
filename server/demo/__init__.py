"""The fictional demo county 云溪县 (codes 9901…, identity numbers starting 99): generated, never
real people, for trying fieldsync out and for tests that need a register of realistic size."""
