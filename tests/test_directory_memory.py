"""The directory contract, run against the in-memory directory."""

from approvalrules.engine.directory import MemoryDirectory
from approvalrules.engine.directory_contract import DirectoryContract


class TestMemoryDirectory(DirectoryContract):
    def make_directory(self, data):
        return MemoryDirectory.from_dict(data)
