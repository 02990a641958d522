"""MQTT topic filters (MQTT 3.1.1 §4.7): matching a topic, and one filter covering another.

ACL patterns use the same syntax as subscriptions: "+" is one level, "#" (last) is the rest.
"""


def matches(pattern, topic):
    """True when the concrete topic is one the pattern (filter) names.

    A "+" or "#" in the first level does not match a topic starting with "$" (§4.7.2)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    if "+" not in pattern and pattern.count("#") == 1 and pattern.endswith("/#"):
        # the ACLs' usual form, asked for every message: "a/b/#" is "a/b" and below it
        stem = pattern[:-2]
        return topic.startswith(stem) and (len(topic) == len(stem) or topic[len(stem)] == "/")
    plevels = pattern.split("/")
    tlevels = topic.split("/")
    for i, level in enumerate(plevels):
        if level == "#":
            return i == len(plevels) - 1
        if i >= len(tlevels) or (level != "+" and level != tlevels[i]):
            return False
    return len(plevels) == len(tlevels)


def covers(pattern, sub_filter):
    """True when every topic sub_filter can match is matched by pattern.

    This is the subscribe ACL: a device allowed "a/+/b" may subscribe "a/x/b" and "a/+/b",
    but not "a/#"; one allowed only exact topics may subscribe to no wildcard at all."""
    if sub_filter.startswith("$") != pattern.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    plevels = pattern.split("/")
    flevels = sub_filter.split("/")
    for i, level in enumerate(plevels):
        if level == "#":
            return i == len(plevels) - 1
        if i >= len(flevels):
            return False
        got = flevels[i]
        if got == "#":
            return False  # the filter reaches further than the pattern's single level
        if level != "+" and level != got:
            return False
    return len(plevels) == len(flevels)


def valid_filter(sub_filter):
    """MQTT's syntax rules for a filter: "#" alone and last, "+" alone in its level."""
    if not sub_filter:
        return False
    levels = sub_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True
