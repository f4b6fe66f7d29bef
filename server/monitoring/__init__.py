"""Monitoring cases (监测帮扶): referrals from the three channels, the entry and exit review
chains, helpers and measures, follow-up visits and the summaries a county reports upward."""
