"""The directory contract, run against the in-memory directory."""

from approvalrules.directory import MemoryDirectory
from approvalrules.testing_directory import DirectoryContract


class TestMemoryDirectory(DirectoryContract):
    def make_directory(self, data):
        return MemoryDirectory.from_dict(data)
