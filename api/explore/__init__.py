"""The OpenDataSoft Explore API v2 over exportd's datasets, served under both
/api/v2/catalog and /api/explore/v2.1/catalog, each path also with a trailing slash."""
