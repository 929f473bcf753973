"""The chat service: each call's rules checked, then the store asked, many calls at a time.

runner  ChatService: a batch of calls in one store round trip (reads in two)
chats   send and pull, of 1:1 chats and groups, and the long poll
groups  create, add, remove, members, a user's groups
inbox   the inbox page (1:1 chats, small and big groups) and read positions
"""
