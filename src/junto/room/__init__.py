"""The room's rules: what people may do in a live conversation (chat, backchannel, hands,
stage, roles, blocks, settings, consent), checked, stored with their room events and delivered
after commit. The realtime hub and the REST mirror both call `room.actions.dispatch`."""
