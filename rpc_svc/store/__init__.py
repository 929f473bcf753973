"""The message store: Redis (one server, or a Redis Cluster) behind one interface.

    interface  what the services may ask (Store), ops  the operations and their outcomes
    factory    open_store: the backend the settings name
    base       what every backend does the same; single, cluster (+ cluster_steps)
    commands/  the Redis commands of each operation and how replies read, by feature
    lua/       the scripts, one .lua file each; keys  key names; records  record codecs
    connections  one Redis's connections; wakeups  long polls' subscriptions
Nothing above this package imports redis or asks which backend it runs on.
"""
