"""Query processes: the web process runs the Explore API's queries, the checks of new exports
and streamed exports in processes of their own (pool.QueryPool), with memory and time budgets,
so that native code that crashes or runs away costs one request, not the service."""
