"""Operations on a whole repository: check, prune, repair, forget, keys, stats.

Each takes a Repository and may use everything below it (store.backup and
store.browse included). check/, prune/ and repair/ are the three big ones;
the modules beside them are shared (the inventory, pack verification,
reachability, the maintenance lock) or small.
"""
