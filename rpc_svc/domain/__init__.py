"""The chat rules: values, names, validation, paging, access and refusals. Pure: no I/O."""
