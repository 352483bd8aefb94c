"""The management API v2 (/api/management/v2/): datasets, files, resources, processing jobs,
saved versions, realtime push, alternative exports. Administrators only."""
