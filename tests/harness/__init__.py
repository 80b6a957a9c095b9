"""The one test harness: servers, fakes, media and budgets that every test builds on."""
