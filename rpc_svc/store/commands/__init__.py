"""The Redis commands of each store operation, and how their replies read: one module per
feature (chats: 1:1 chats; groups; members: a member's side and big groups' activity), each
with `OPS`, `commands(op, plan)` and `outcome(op, replies)`; plan: what they depend on."""
