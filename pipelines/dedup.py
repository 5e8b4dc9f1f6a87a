"""The duplicate-finding part of the curate graph, and its DoFns over ``curation.images.duplicates``.

Pass 1 (scan): valid rows -> hash-band buckets (packed bytes) -> candidate pairs owned by one bucket ->
thumbnails of candidate images, read back from the work shards -> confirmed near-copies -> split groups
(the smallest image key among an image's direct near-copies) -> duplicate rows (rows of one image, or of one
split group, with the same normalized question [and answer]) -> decisions (JSON lines in the work folder).
Pass 2 (curate): ``Placement`` reads the decisions once per worker and drops duplicates / places each
row's split group (``curation.images.duplicates.placed``), run by ``transforms.RunStage``.
Band entries, problem keys, the candidates' owner entries and their thumbnails meet through spill files
(``pipelines.spill``): what crosses the runner's shuffles grows with the near-copies, not with the rows. The
thumbnails step finds a candidate's buckets in owner index files (``curation.images.owner_index``), one per
spill partition: its side input is their paths, not a dict of every candidate.
"""
from __future__ import annotations

import json
import uuid

import apache_beam as beam

from curation.images import bucket_confirm, duplicates, owner_index
from curation.images.hashes import hash_from_hex
from curation.recipe import DataRecipe
from curation.rejects import Reject
from pipelines import heap
from pipelines.profile import rows_counter
from pipelines.spill import (PARTITIONS, PartitionedSpill, closed_extents, grouped_records, partition_of, read_bytes,
                             read_records, spill_group_by_key, spilled_partitions, write_bytes)
from pipelines.batched import BatchedMap
from pipelines.transforms import Routed
from schemas import normalize_question
from schemas.counters import Count, Outcome, Stage


def decisions_layout():
    import pyarrow as pa

    return pa.schema([("decision", pa.string())])  # one JSON object per line: curation.images.duplicates.read_decisions


def _decision_lines(folder: str):
    """The JSON decision lines of pass 1's work files (local, or any Beam filesystem: gs://, s3://)."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    for match in sorted(FileSystems.match([f"{folder}/*.parquet"])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(match.path) as f:
            # ParquetFile, not read_table: read_table imports pyarrow.dataset (+45 MB of RSS, libraries and modules)
            yield from pq.ParquetFile(f).read(columns=["decision"]).column("decision").to_pylist()


BAND_ENTRY = duplicates.BAND_BYTES + duplicates.MEMBER_BYTES  # a band entry in a spill file: band key + member


class BandEntries(beam.DoFn):
    """Valid rows -> their hash-band entries (``duplicates.band_entries``: nine per image), spilled by the band
    key's partition (``pipelines.spill``); emits ``(partition, (file, extents))`` when the bundle ends, for
    :func:`bucket_members` to gather.

    Rows are taken ``BATCH`` at a time (held by reference; ``pipelines.batched.BatchedMap`` says why) and a
    batch's entries of one partition go as one spill record of fixed-size entries (``BAND_ENTRY`` bytes: the
    packed band key, then the member), not a record each: ~70 spill records per batch where there were ~2,300,
    each with its own length, key length and partition function call."""

    BATCH = 256

    def __init__(self, folder: str, threshold: int, partitions: int = PARTITIONS):
        self.folder, self.threshold, self.partitions = folder, threshold, partitions

    def start_bundle(self):
        self.held, self.spill = [], None

    def process(self, row):
        self.held.append(row)
        if len(self.held) >= self.BATCH:
            self._spill_held()

    def _spill_held(self) -> None:
        held, self.held = self.held, []
        parts: dict[int, bytearray] = {}
        th, n, packed_band = self.threshold, self.partitions, duplicates.packed_band
        for row in held:
            for band, member in duplicates.band_entries(row["image_key"], hash_from_hex(row["image_hash"]), th):
                key = packed_band(band)
                p = partition_of(key, n)
                buf = parts.get(p)
                if buf is None:
                    buf = parts[p] = bytearray()
                buf += key
                buf += member
        if parts and self.spill is None:
            self.spill = PartitionedSpill(self.folder)
        for p, buf in parts.items():
            self.spill.add(p, bytes(buf))

    def finish_bundle(self):
        if self.held:
            self._spill_held()
        yield from closed_extents(self.spill)
        self.spill = None


def bucket_members(parts) -> list[tuple[tuple[int, int], bytes]]:
    """One partition of :class:`BandEntries`' spill -> ``(band key, its members packed)`` per bucket, band keys
    sorted, members in the order written (repeats kept: ``duplicates.unpack_members`` drops them)."""
    kb = duplicates.BAND_BYTES
    buckets: dict[bytes, bytearray] = {}
    for record in read_records(parts):
        for i in range(0, len(record), BAND_ENTRY):
            key = record[i:i + kb]
            members = buckets.get(key)
            if members is None:
                members = buckets[key] = bytearray()
            members += record[i + kb:i + BAND_ENTRY]
    return [(duplicates.unpacked_band(key), bytes(members)) for key, members in sorted(buckets.items())]


OWNER_PARTITIONS = 64  # the candidates' owner index: one file per partition of the image keys


def write_owner_index(partition: int, parts, folder: str) -> tuple[int, str]:
    """One partition of the owners spill (``pipelines.spill``) -> its index file in ``folder``
    (``curation.images.owner_index``: sorted image keys -> ``duplicates.packed_owners``); ``(partition, path)``."""
    entries = [(key, duplicates.packed_owners(owned)) for key, owned in grouped_records(read_records(parts))]
    path = f"{folder.rstrip('/')}/index-{partition:03d}-{uuid.uuid4().hex}.bin"  # a retried partition: a new file
    write_bytes(path, owner_index.packed_index(entries))
    return partition, path


_OWNERS: list = [None, None]  # (the index files' names, their loaded OwnerIndex by partition) in this process


def loaded_owners(names: tuple) -> dict[int, owner_index.OwnerIndex]:
    """The owner indexes of ``names`` (``(partition, path)``s), read once per process: every thumbnails bundle
    of a worker shares them, and :func:`release_owners` lets them go (a later call reads them again)."""
    if _OWNERS[0] is not names and _OWNERS[0] != names:
        _OWNERS[:] = [None, None]  # the old ones go before the new ones are read
        _OWNERS[:] = [names, {p: owner_index.OwnerIndex(read_bytes(path), path) for p, path in names}]
    return _OWNERS[1]


def release_owners() -> None:
    """Forget the loaded owner indexes (~60 bytes per candidate image). Confirmation calls it: it runs after a
    shuffle of every thumbnails bundle's output, so this process makes no more thumbnails for this pass."""
    _OWNERS[:] = [None, None]


class CandidateThumbnails(beam.DoFn):
    """Row groups of the work rows (Arrow tables of image_key, images) -> each candidate image's thumbnail
    (``duplicates.thumbnail_member``) spilled once for each bucket that owns a candidate pair of it, into this
    bundle's spill file (``pipelines.spill``), by the bucket's partition; emits ``(partition, (file, extents))``
    when the bundle ends.

    Which buckets own an image's pairs comes from the owner index files (side input: their
    ``(partition, path)``s only, from :func:`write_owner_index`), read once per DoFn instance into flat arrays
    (``curation.images.owner_index.OwnerIndex``): ~60 bytes per candidate image, where a dict side input cost
    ~675 (held by the runner, and built and decoded again per reader).

    A row group is taken whole: its keys looked up, then only the candidates' images read out of the table,
    thumbnailed, and spilled, each in one loop (``pipelines.batched.BatchedMap`` says why); no row becomes a
    dict and no Beam element per row. Rows of one image usually come together (one image, several questions), so
    an image among the last few sent is not sent again; one sent twice is harmless (a bucket keeps one thumbnail
    per image).
    """

    RECENT = 256

    def __init__(self, spill_dir: str, partitions: int = OWNER_PARTITIONS):
        self.spill_dir, self.partitions = spill_dir, partitions

    def setup(self):
        self.names, self.files = None, None
        self.rows = rows_counter()  # the profile's rows of this step (its elements are row groups)

    def owners(self, files) -> dict[int, owner_index.OwnerIndex]:
        """The owner indexes of the side input ``files`` (:func:`loaded_owners`: read once per process)."""
        if files is not self.files:
            self.names, self.files = tuple(sorted(files)), files
        return loaded_owners(self.names)

    def start_bundle(self):
        self.recent, self.spill = set(), None

    def process(self, table, owner_files):
        self.rows.inc(table.num_rows)
        owners = self.owners(owner_files)
        wanted = []
        for i, key in enumerate(table.column("image_key").to_pylist()):
            if key in self.recent:
                continue
            try:
                image = bytes.fromhex(key)
            except (TypeError, ValueError):  # not a sha256: never a candidate (band_entries refused it)
                continue
            index = owners.get(partition_of(image, self.partitions))
            found = index.get(image) if index is not None else None
            if not found:
                continue
            if len(self.recent) >= self.RECENT:
                self.recent.clear()
            self.recent.add(key)
            wanted.append((i, key, found))
        if not wanted:
            return
        images = table.column("images").take([i for i, _, _ in wanted]).to_pylist()
        made = [(duplicates.unpacked_owners(found), key, duplicates.thumbnail_of({"images": imgs}))
                for (_, key, found), imgs in zip(wanted, images)]
        if self.spill is None:
            self.spill = PartitionedSpill(self.spill_dir)
        for (h, bands), key, thumbnail in made:
            member = duplicates.thumbnail_member(key, h, thumbnail)
            for band in bands:
                self.spill.add(spill_partition(band), duplicates.bucket_record(band, member))

    def finish_bundle(self):
        yield from closed_extents(self.spill)
        self.spill = None
        heap.trim()  # decoded images and their thumbnails, freed (at most once a second)


SPILL_PARTITIONS = 64  # a partition of the candidates' thumbnails is confirmed at a time: ~1/64 of them in memory


def spill_partition(band_key: tuple[int, int]) -> int:
    """The spill partition of a bucket (stable across processes: no ``hash()``)."""
    return (band_key[0] * 1_000_003 + band_key[1]) % SPILL_PARTITIONS


CONFIRM_BYTES = 16 << 20  # a spill partition's records held at once; a larger one is read in several shares


def confirm_spilled(parts, threshold: int, budget: int = CONFIRM_BYTES):
    """One spill partition's records, from every bundle's file -> the near-copy pairs its buckets confirm.

    A partition grows with the rows (1/64 of every candidate's thumbnail records: ~75 MB at 1M synthetic
    rows), so when its extents add up to more than ``budget`` bytes it is read once per share of its buckets
    (a bucket's share: ``pipelines.spill.partition_of`` its band key), each share gathered and confirmed alone.
    Reading again costs little next to confirming; every bucket is still confirmed once, with all its members."""
    release_owners()
    parts = list(parts)
    total = sum(length for _, extents in parts for _, length in extents)
    shares = max(1, -(-total // budget))
    for share in range(shares):
        records = read_records(parts)
        if shares > 1:
            records = (r for r in records if partition_of(r[:duplicates.BAND_BYTES], shares) == share)
        yield from bucket_confirm.confirmed_in_buckets(records, threshold)
        heap.trim(every=0)  # a share's thumbnails and masks, freed: not kept resident for the rest of the pass


def problem_members(packed) -> list[tuple[str, str, str, str]]:
    """The ``(id, row_key, image_key, normalized question)`` members of one problem key, each shuffled as
    one JSON string (``duplicate_decisions``)."""
    import json

    return [tuple(json.loads(m)) for m in packed]


class ProblemsOfImages(beam.DoFn):
    """(problem key of one image, its rows) -> drops, when the image has no near-copy; else the rows
    re-keyed by the image's split group (tag ``regroup``), to meet the rows of its copies."""

    def process(self, keyed, groups):
        key, members = keyed
        group = groups.get(key[:key.index(":")])
        if group is None:
            if len(members) > 1:  # one row alone under its key (nearly every row) has no duplicate: nothing to decode
                yield from duplicates.duplicates_in_group(problem_members(members))
            return
        new_key = duplicates.regrouped(key, group)
        for member in members:
            yield beam.pvalue.TaggedOutput("regroup", (new_key, member))


class Placement:
    """Pass 1's decisions applied by ``curation.images.duplicates.placed``: duplicates out, split groups placed.

    The decisions are read once per worker (``setup``), from the work folder of pass 1.
    """

    def __init__(self, decisions_dir: str, test_fraction: float, val_fraction: float, salt: str):
        self.decisions_dir, self.split = decisions_dir, (test_fraction, val_fraction, salt)

    def setup(self):
        self.drops, self.groups = duplicates.read_decisions(_decision_lines(self.decisions_dir))

    def __call__(self, row: dict):
        out = duplicates.placed(row, self.drops, self.groups, *self.split)
        if isinstance(out, Reject):
            kind = Outcome(out.reason.removesuffix("_duplicate"))  # exact | near
            return Routed(reject=out, counts=((Count(Stage.DEDUP, Outcome.DUPLICATES), 1), (Count(Stage.DEDUP, kind), 1)))
        if out["split_group"] != out["image_key"]:
            return Routed(row=out, counts=((Count(Stage.DEDUP, Outcome.GROUPED_ROWS), 1),))
        return out  # a plain kept row: RunStage's fast path (counted in / out in bulk)


def near_copy_groups(valid: list, work_files, recipe: DataRecipe, range_bytes: int, spill_dir: str):
    """Valid rows -> (image key, split group) for every image that has a confirmed near-copy.

    Hash-band buckets cross the shuffle as packed bytes; each bucket finds the candidate pairs it owns
    (``curation.images.duplicates.owned_pairs``). Thumbnails are made from the work rows read back (never from
    rows held in memory), for candidate images only, and go to the buckets that own their pairs through
    spill files in ``spill_dir`` (``pipelines.spill``: only file extents cross the shuffle), where each pair
    is confirmed, a partition of buckets at a time: no pair list and no thumbnail crosses a shuffle. The work
    rows are read in ranges of ``range_bytes`` (``pipelines.curate.work_read_bytes``).
    """
    th = recipe.dedup.threshold
    # Buckets meet through spill files (pipelines.spill): the in-process runner would hold every band entry of
    # every row in memory at a shuffle (~0.4 KB per row as bytes, more as the allocator keeps it).
    extents = [rows | f"Hash bands {i}" >> beam.ParDo(BandEntries(f"{spill_dir}/bands", th))
               for i, rows in enumerate(valid)]
    if len(extents) > 1:
        extents = [extents | "Bucket members: all extents" >> beam.Flatten()]
    buckets = (extents[0] | "Bucket members: group extents" >> beam.GroupByKey()
               | "Bucket members: read partitions" >> beam.FlatMapTuple(lambda _, parts: bucket_members(parts)))
    if not recipe.dedup.confirm:
        pairs = buckets | "Hash decides" >> beam.FlatMapTuple(lambda band, packed: duplicates.bucket_pairs(band, packed, th))
    else:
        # Each thumbnail goes straight to the buckets that own its image's pairs: candidate image -> its buckets,
        # gathered through spill files into one index file per partition; the side input is only their paths.
        at = buckets | "Candidates" >> beam.MapTuple(lambda band, packed: duplicates.owner_records(band, packed, th))
        index_dir = f"{spill_dir}/owner_index"
        index_files = (spilled_partitions([at], f"{spill_dir}/owners", "Buckets of images", partitions=OWNER_PARTITIONS,
                                          many=True)
                       | "Owner index files" >> beam.MapTuple(lambda part, parts: write_owner_index(part, parts, index_dir)))
        pairs = (work_files | "Read candidate images" >> beam.io.ReadAllFromParquetBatched(
            columns=["image_key", "images"], desired_bundle_size=range_bytes, label="Read candidates")
                 | "Thumbnails" >> beam.ParDo(CandidateThumbnails(f"{spill_dir}/thumbnails"),
                                              beam.pvalue.AsList(index_files))
                 | "Group spilled buckets" >> beam.GroupByKey()
                 | "Confirm" >> beam.FlatMapTuple(lambda _, parts: confirm_spilled(parts, th)))
    return (pairs | "Group edges" >> beam.FlatMapTuple(duplicates.group_edges)
            | "Smallest in group" >> beam.CombinePerKey(min)
            | "Not alone" >> beam.Filter(lambda kv: kv[0] != kv[1]))


def duplicate_decisions(valid: list, groups, recipe: DataRecipe, spill_dir: str):
    """Rows (light fields only) + split groups -> drop decisions of duplicate rows.

    Rows first meet by image and question, through spill files in ``spill_dir`` (``pipelines.spill``); only
    the rows of images with near-copies meet again under their group's key (a shuffle: they are few), and the
    groups travel as a (small) side input.
    """
    scope = recipe.dedup.scope

    def problem(r):
        # one JSON string, not a tuple of four (problem_members)
        q = normalize_question(r["question"])
        member = json.dumps([r["id"], duplicates.row_key(r), r["image_key"], q], ensure_ascii=False)
        return duplicates.duplicate_key(r["image_key"], q, r["answer"], scope), member

    # every image of a group, the one whose key names it included, meets its copies under the group's key
    members = groups | "Images in groups" >> beam.FlatMapTuple(lambda image, group: [(image, group), (group, group)])
    keyed = [rows | f"Problem keys {i}" >> beam.ParDo(BatchedMap(problem)) for i, rows in enumerate(valid)]
    by_image = (spill_group_by_key(keyed, f"{spill_dir}/problems", "Group problems", text=True)
                | "Problems of images" >> beam.ParDo(ProblemsOfImages(), beam.pvalue.AsDict(members))
                .with_outputs("regroup", main="drops"))
    by_group = (by_image.regroup | "Group problems of groups" >> beam.GroupByKey()
                | "Drops in groups" >> beam.FlatMapTuple(lambda _, ms: duplicates.duplicates_in_group(problem_members(ms))))
    return (by_image.drops, by_group) | "Drops" >> beam.Flatten()
