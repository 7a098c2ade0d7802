"""A conversation's messages as a tree: branches, versions, and the path a reply answers.

Every message has a parent (none for a first message); messages with the same parent are versions
of one another, oldest first. A branch is the path from a first message down to a leaf; the
conversation's current branch is the one through its `current_leaf`. Plain data in, plain data out:
the callers read (id, parent_id) pairs from the database.

Children always have larger ids than their parents (a message is saved after the one it follows,
imports save parents first), so the newest message below a message is a leaf.
"""

from collections import defaultdict
from collections.abc import Iterable

# "After the current branch's last message", where a caller may also name a message or None (a first message).
CURRENT = "current"


class Tree:
    def __init__(self, pairs: Iterable[tuple[int, int | None]]):
        self.parent: dict[int, int | None] = {}
        self.children: dict[int | None, list[int]] = defaultdict(list)  # None: the first messages
        for message_id, parent_id in sorted(pairs):
            self.parent[message_id] = parent_id
            self.children[parent_id].append(message_id)

    def __contains__(self, message_id) -> bool:
        return message_id in self.parent

    def __len__(self) -> int:
        return len(self.parent)

    def path(self, leaf: int | None) -> list[int]:
        """The ids from the first message down to `leaf`, in order ([] for None). A loop (only a hand-edited
        database could hold one) ends the walk instead of running forever."""
        path, seen = [], set()
        while leaf is not None and leaf in self.parent and leaf not in seen:
            seen.add(leaf)
            path.append(leaf)
            leaf = self.parent[leaf]
        path.reverse()
        return path

    def newest_leaf(self, message_id: int | None) -> int | None:
        """The newest message at or below `message_id` (below None: anywhere): where its newest branch ends."""
        newest, stack = message_id, list(self.children.get(message_id, ()))
        while stack:
            node = stack.pop()
            newest = node if newest is None else max(newest, node)
            stack.extend(self.children.get(node, ()))
        return newest

    def current_leaf(self, saved: int | None) -> int | None:
        """The leaf of the current branch: the saved one's newest leaf, or the newest branch's when none is saved
        (or the saved message is gone)."""
        return self.newest_leaf(saved if saved in self.parent else None)

    def branch(self, saved: int | None) -> list[int]:
        """The current branch: what the page shows and the next send answers."""
        return self.path(self.current_leaf(saved))

    def versions(self, message_id: int) -> list[int]:
        """This message and its siblings (the other versions of it), oldest first."""
        if message_id not in self.parent:
            return [message_id]
        return self.versions_under(self.parent[message_id])

    def versions_under(self, parent_id: int | None) -> list[int]:
        """The messages that follow `parent_id` (None: the first messages), oldest first."""
        return list(self.children.get(parent_id, ()))
