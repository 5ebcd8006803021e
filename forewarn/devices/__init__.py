"""Device identity and lifecycle, the operator's side: broker credentials (:mod:`.passwords`),
the ACL (:mod:`.acl`), remote config (:mod:`.config`) and what core knows of a device
(:mod:`.book`)."""
