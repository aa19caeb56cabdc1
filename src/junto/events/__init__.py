"""The room stream below the rules that write to it: the durable event log and delivery after
commit. Domain modules (conversations, the room's rules, captions) append here and hand the
committed events to a `Delivery`, which the realtime hub implements, without importing the hub
(the layers in pyproject.toml's [tool.importlinter])."""
