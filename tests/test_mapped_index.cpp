// Index files opened in place (format 3): the mapped graph answers exactly as the one in memory,
// a damaged byte anywhere is caught before anything from it is used, and a file replaced while it
// is mapped leaves its reader working.
#include <doctest/doctest.h>

#include <xxhash.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "bench/synthetic.h"
#include "index/grouped_index.h"
#include "index/hnsw_index.h"
#include "index/ivf_index.h"
#include "test_support.h"

using namespace cbir;

namespace {

void flip(const std::filesystem::path& path, uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5A);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
}

uint64_t u64_at(const std::filesystem::path& path, uint64_t offset) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    uint64_t v = 0;
    f.read(reinterpret_cast<char*>(&v), 8);
    return v;
}

struct Rows {
    int dimension;
    std::vector<float> vectors;  // row id i + 1 at i
    VectorFetcher fetcher() const {
        return [this](const std::vector<int64_t>& ids, std::vector<float>& out) {
            out.assign(ids.size() * dimension, std::nanf(""));
            for (size_t i = 0; i < ids.size(); ++i)
                if (ids[i] >= 1 && size_t(ids[i]) <= vectors.size() / dimension)
                    std::copy_n(&vectors[(ids[i] - 1) * dimension], dimension, &out[i * dimension]);
        };
    }
    const float* row(size_t i) const { return &vectors[i * dimension]; }
    size_t count() const { return vectors.size() / dimension; }
};

// A grouped HNSW index of `n` rows, rows 2 and 3 copies of row 1 (so the file has an extension).
std::unique_ptr<GroupedIndex> build(const Rows& rows, IndexKind kind = IndexKind::Hnsw) {
    IndexSpec spec;
    spec.kind = kind;
    spec.hnsw_m = 8;
    auto inner = std::make_unique<HnswIndex>(rows.dimension, Metric::L2, spec, rows.count());
    inner->train(rows.vectors.data(), rows.count());
    auto index = std::make_unique<GroupedIndex>(std::move(inner), rows.fetcher());
    std::vector<int64_t> ids(rows.count());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i + 1);
    index->add_batch(ids.data(), rows.vectors.data(), ids.size(), false);
    return index;
}

Rows make_rows(size_t n, int dimension, unsigned seed) {
    Rows rows{dimension, synthetic_features(n, dimension, seed, 10)};
    std::copy_n(rows.row(0), dimension, &rows.vectors[1 * dimension]);
    std::copy_n(rows.row(0), dimension, &rows.vectors[2 * dimension]);
    return rows;
}

const HnswIndex& hnsw_of(const VectorIndex& index) {
    return dynamic_cast<const HnswIndex&>(dynamic_cast<const GroupedIndex&>(index).inner());
}

// Every row as a query, searched broadly enough (ef above the count) to reach every node.
std::vector<std::vector<Neighbor>> search_everything(const VectorIndex& index, const Rows& rows) {
    std::vector<std::vector<Neighbor>> out;
    for (size_t i = 0; i < rows.count(); ++i) out.push_back(index.search(rows.row(i), {10, int(rows.count()) + 10, 0}));
    return out;
}

void check_same(const std::vector<std::vector<Neighbor>>& a, const std::vector<std::vector<Neighbor>>& b) {
    REQUIRE(a.size() == b.size());
    for (size_t q = 0; q < a.size(); ++q) {
        REQUIRE(a[q].size() == b[q].size());
        for (size_t r = 0; r < a[q].size(); ++r) {
            CHECK(a[q][r].id == b[q][r].id);
            CHECK(a[q][r].distance == b[q][r].distance);
        }
    }
}

}  // namespace

TEST_CASE("mapped index: the graph read in place answers exactly as the one it was saved from") {
    test::TempDir dir;
    const auto file = dir.path() / "index.hnsw";
    const Rows rows = make_rows(1500, 24, 5);
    for (IndexKind kind : {IndexKind::Hnsw, IndexKind::HnswSq8}) {
        CAPTURE(index_kind_name(kind));
        auto built = build(rows, kind);
        built->remove({7, 8});  // tombstones, counted in the header
        built->save(file, CatalogueState{});
        IndexFileHeader header;
        auto mapped = GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Mapped);
        CHECK(header.version == 3);
        CHECK(hnsw_of(*mapped).reads_in_place());
        CHECK(mapped->size() == built->size());
        const auto expected = search_everything(*built, rows);
        check_same(search_everything(*mapped, rows), expected);
        // A change copies the records into memory first; the answers stay the same.
        mapped->remove({9});
        built->remove({9});
        CHECK_FALSE(hnsw_of(*mapped).reads_in_place());
        check_same(search_everything(*mapped, rows), search_everything(*built, rows));
    }
}

TEST_CASE("copied index: what is written into its file afterwards never reaches a search") {
    test::TempDir dir;
    const auto file = dir.path() / "index.hnsw";
    const Rows rows = make_rows(1500, 24, 7);
    auto built = build(rows);
    built->save(file, CatalogueState{});
    const auto expected = search_everything(*built, rows);
    const uint64_t size = std::filesystem::file_size(file);
    IndexFileHeader header;
    auto copied = GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Copied);
    // What cp or rsync --inplace over the file does: truncate it, then write other bytes of the same size.
    std::filesystem::resize_file(file, 0);
    {
        std::ofstream out(file, std::ios::binary | std::ios::in | std::ios::out);
        const std::string junk(size, '\x5a');
        out.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    check_same(search_everything(*copied, rows), expected);
    // A damaged file is still refused when it is copied: the copy is checked whole.
    IndexFileHeader header2;
    CHECK_THROWS_AS(GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header2, IndexFileHolding::Copied), IndexFileError);
    built->save(file, CatalogueState{});
    flip(file, 128 + 96 + 700 * 20);  // inside the records, which a mapping checks only when a search reaches them
    CHECK_THROWS_WITH_AS(GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header2, IndexFileHolding::Copied),
                         doctest::Contains("damaged"), IndexFileError);
}

TEST_CASE("mapped index: a damaged byte in any region is caught before a result from it is returned") {
    test::TempDir dir;
    const auto good = dir.path() / "good.hnsw";
    const auto file = dir.path() / "index.hnsw";
    const Rows rows = make_rows(600, 16, 6);
    build(rows)->save(good, CatalogueState{});
    const uint64_t size = std::filesystem::file_size(good);
    const uint64_t payload = u64_at(good, 64);  // the library's bytes and the extension
    const uint64_t extension = u64_at(good, 112);
    const uint64_t graph_bytes = payload - extension;
    const uint64_t record = u64_at(good, 128 + 24);  // hnswlib's size_data_per_element
    const uint64_t records_at = 128 + 96, records_end = records_at + 600 * record;
    REQUIRE(extension > 0);
    REQUIRE(records_end < 128 + graph_bytes);
    struct Region {
        const char* name;
        uint64_t offset;
        bool lazy;  // checked when a search reaches it, not at open
    };
    // Records in chunks of records only (16 KiB chunks; the first holds the graph's header, the last
    // of the records share theirs with the upper levels: both are read at open).
    const uint64_t first_lazy = (16384 - 96) / record + 1;
    const Region regions[] = {
        {"header: generation", 40, false},
        {"header: store id", 90, false},
        {"graph header", 128 + 30, false},
        {"first record's links", records_at + 1, false},
        {"a record's links", records_at + first_lazy * record + 1, true},
        {"a record's vector", records_at + 300 * record + record / 2, true},
        {"a record's label", records_at + 451 * record - 3, true},
        {"last record's label", records_end - 3, false},
        {"upper levels", records_end + 2, false},
        {"extension (groups)", 128 + graph_bytes + 5, false},
        {"checksum table", size - 3, false},
    };
    for (const Region& region : regions) {
        CAPTURE(region.name);
        const uint64_t chunk = (region.offset - 128) / 16384;
        REQUIRE(region.lazy == (region.offset >= records_at && region.offset < records_end && chunk > 0 &&
                                128 + (chunk + 1) * 16384 <= records_end));
        std::filesystem::copy_file(good, file, std::filesystem::copy_options::overwrite_existing);
        flip(file, region.offset);
        IndexFileHeader header;
        if (!region.lazy) {
            CHECK_THROWS_WITH_AS(GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Mapped), doctest::Contains("damaged"),
                                 IndexFileError);
            continue;
        }
        // Opening reads no record; the first search that reaches the damaged one fails, and so does
        // every later one: no result is ever built from it.
        std::unique_ptr<GroupedIndex> index;
        REQUIRE_NOTHROW(index = GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Mapped));
        CHECK_THROWS_WITH_AS(search_everything(*index, rows), doctest::Contains("checksum"), IndexFileError);
        CHECK_THROWS_AS(search_everything(*index, rows), IndexFileError);
        // A change, or a save, checks the whole file first: damage is never written out as good.
        CHECK_THROWS_AS(index->save(dir.path() / "copy.hnsw", CatalogueState{}), IndexFileError);
        CHECK_THROWS_AS(index->remove({5}), IndexFileError);
        CHECK_FALSE(std::filesystem::exists(dir.path() / "copy.hnsw"));
    }
}

TEST_CASE("mapped index: a file replaced by a rebuild leaves its reader working; the next open sees the new one") {
    test::TempDir dir;
    const auto file = dir.path() / "index.hnsw";
    const Rows old_rows = make_rows(800, 16, 7);
    auto old_index = build(old_rows);
    old_index->save(file, CatalogueState{"0123456789abcdef0123456789abcdef", 1, "fedcba9876543210fedcba9876543210"});
    IndexFileHeader header;
    auto reader = GroupedIndex::load(file, IndexSpec{}, old_rows.fetcher(), header, IndexFileHolding::Mapped);
    REQUIRE(hnsw_of(*reader).reads_in_place());
    const auto first = reader->search(old_rows.row(10), {10, 64, 0});

    const Rows new_rows = make_rows(500, 16, 8);
    build(new_rows)->save(file, CatalogueState{"0123456789abcdef0123456789abcdef", 2, "00112233445566778899aabbccddeeff"});
    // The reader's map is of the old file (a rename replaced the name, not the bytes), and every
    // record it has not read yet is still checked against the old file's table.
    check_same(search_everything(*reader, old_rows), search_everything(*old_index, old_rows));
    check_same({reader->search(old_rows.row(10), {10, 64, 0})}, {first});

    auto next = GroupedIndex::load(file, IndexSpec{}, new_rows.fetcher(), header, IndexFileHolding::Mapped);
    CHECK(header.built_from.generation == 2);
    CHECK(next->size() == 500);
    CHECK(reader->size() == 800);
}

TEST_CASE("mapped index: a version-2 file (one checksum over everything) is still read, and checked whole") {
    // Format 2 as cbir wrote it before format 3: the header (version 2, no chunk size) and one XXH3
    // over the payload, no table. Rewritten here from a format-3 file of the same index.
    test::TempDir dir;
    const auto file = dir.path() / "index.hnsw";
    const Rows rows = make_rows(300, 16, 9);
    auto built = build(rows);
    built->save(file, CatalogueState{});
    const uint64_t payload = u64_at(file, 64);
    std::string bytes(128 + payload, '\0');
    {
        std::ifstream in(file, std::ios::binary);
        in.read(&bytes[0], static_cast<std::streamsize>(bytes.size()));
    }
    bytes[8] = 2;
    std::memset(&bytes[120], 0, 8);
    const uint64_t sum = XXH3_64bits(bytes.data() + 128, payload);
    std::memcpy(&bytes[72], &sum, 8);
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
    IndexFileHeader header;
    auto loaded = GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Mapped);
    CHECK(header.version == 2);
    CHECK_FALSE(hnsw_of(*loaded).reads_in_place());
    check_same(search_everything(*loaded, rows), search_everything(*built, rows));
    flip(file, 128 + payload / 2);
    CHECK_THROWS_WITH_AS(GroupedIndex::load(file, IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Mapped), doctest::Contains("checksum"),
                         IndexFileError);
}

TEST_CASE("mapped index: IVF lists are read in place, checked when visited, and copied before a change") {
    test::TempDir dir;
    const auto file = dir.path() / "index.ivf";
    constexpr int d = 16;
    const size_t n = 12000;
    const Rows rows{d, synthetic_features(n, d, 21, 20)};
    std::vector<int64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = int64_t(i + 1);
    for (IndexKind kind : {IndexKind::Ivf, IndexKind::IvfPq}) {
        CAPTURE(index_kind_name(kind));
        IndexSpec spec;
        spec.kind = kind;
        spec.ivf_nlist = 32;
        spec.pq_m = 4;
        IvfIndex built(d, Metric::L2, spec);
        built.train(rows.vectors.data(), n);
        built.add_batch(ids.data(), rows.vectors.data(), n, false);
        const auto save = [](const VectorIndex& index, const std::filesystem::path& to) {
            PayloadFile payload;
            IndexFileHeader written;
            index.write_payload(payload, written);
            write_index_file(to, written, payload, "");
        };
        save(built, file);
        IndexFileHeader header;
        auto open = [&] { return IvfIndex::from_payload(open_index_file(file, header, IndexFileHolding::Mapped), header, IndexSpec{}, file.string()); };
        auto mapped = open();
        CHECK(mapped->reads_in_place());
        for (size_t q = 0; q < 200; ++q) {
            const auto a = built.search(rows.row(q * 37), {10, 0, 32});
            const auto b = mapped->search(rows.row(q * 37), {10, 0, 32});
            REQUIRE(a.size() == b.size());
            for (size_t r = 0; r < a.size(); ++r) {
                CHECK(a[r].id == b[r].id);
                CHECK(a[r].distance == b[r].distance);
            }
        }
        // Saved unchanged: the same bytes. Changed: copied first, then it answers as the original.
        save(*mapped, dir.path() / "again.ivf");
        CHECK(std::filesystem::file_size(dir.path() / "again.ivf") == std::filesystem::file_size(file));
        mapped->remove({1});
        built.remove({1});
        CHECK_FALSE(mapped->reads_in_place());
        CHECK(mapped->search(rows.row(5), {10, 0, 32})[0].id == built.search(rows.row(5), {10, 0, 32})[0].id);

        // A damaged byte in the last list (the end of the lists is the end of the payload): opening
        // succeeds, visiting every list fails.
        const uint64_t payload = u64_at(file, 64);
        flip(file, 128 + payload - 100);
        auto damaged = open();
        CHECK_THROWS_WITH_AS(damaged->search(rows.row(0), {10, 0, 32}), doctest::Contains("checksum"), IndexFileError);
        CHECK_THROWS_AS(damaged->remove({2}), IndexFileError);
    }
}
