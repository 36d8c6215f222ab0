// The catalogue is the source of truth: transactions, generations and persistence.
#include <doctest/doctest.h>

#include <fstream>

#include "store/catalogue.h"
#include "store/store.h"
#include "test_support.h"
#include "util/error.h"

using namespace cbir;

namespace {

ImageRecord record(const std::string& path, float value) {
    ImageRecord r;
    r.path = path;
    r.size = 100;
    r.mtime_ns = 5;
    r.sha256 = "abc";
    r.width = 4;
    r.height = 3;
    r.vector = {value, value + 1, value + 2};
    return r;
}

StoreSettings settings() {
    StoreSettings s;
    s.model_path = "/m.pt";
    s.model_sha256 = "ff";
    s.dimension = 3;
    s.metric = Metric::Cosine;
    s.preprocessing = "p";
    return s;
}

}  // namespace

TEST_CASE("catalogue: a committed transaction bumps the generation once; a rolled-back one leaves nothing") {
    test::TempDir dir;
    Catalogue c(dir.path() / "c.sqlite", CatalogueAccess::Create);
    CHECK(c.generation() == 0);
    {
        Transaction txn(c);
        c.upsert(record("/a.jpg", 1));
        c.upsert(record("/b.jpg", 2));
        txn.commit();
    }
    CHECK(c.generation() == 1);
    CHECK(c.count() == 2);
    {
        Transaction txn(c);
        c.upsert(record("/c.jpg", 3));
        // destroyed without commit: rolled back
    }
    CHECK(c.count() == 2);
    CHECK(c.generation() == 1);
    {
        Transaction txn(c);
        c.set_meta("note", "metadata alone is not a catalogue change");
        txn.commit();
    }
    CHECK(c.generation() == 1);
}

TEST_CASE("catalogue: upsert replaces by path and rows changed since a generation are listed") {
    test::TempDir dir;
    Catalogue c(dir.path() / "c.sqlite", CatalogueAccess::Create);
    int64_t first_id;
    {
        Transaction txn(c);
        first_id = c.upsert(record("/a.jpg", 1));
        c.upsert(record("/b.jpg", 2));
        txn.commit();
    }
    {
        Transaction txn(c);
        CHECK(c.upsert(record("/a.jpg", 10)) == first_id);
        txn.commit();
    }
    CHECK(c.count() == 2);
    std::vector<int64_t> changed;
    c.for_each_vector_since(1, [&](int64_t id, const float* v, int dimension) {
        changed.push_back(id);
        CHECK(dimension == 3);
        CHECK(v[0] == 10.0f);
    });
    CHECK(changed == std::vector<int64_t>{first_id});
    const auto row = c.find_by_path("/a.jpg");
    REQUIRE(row);
    CHECK(row->vector == std::vector<float>{10, 11, 12});
    CHECK(c.paths_of({first_id, 999}) == std::vector<std::string>{"/a.jpg", ""});
}

TEST_CASE("store: settings persist across reopen, and damaged or foreign stores are refused with the path") {
    test::TempDir dir;
    const auto store_dir = dir.path() / ".cbir";
    {
        auto store = Store::create(store_dir, settings());
        Transaction txn(store->catalogue());
        store->catalogue().upsert(record("/a.jpg", 1));
        txn.commit();
    }
    {
        auto store = Store::open(store_dir);
        CHECK(store->settings().metric == Metric::Cosine);
        CHECK(store->settings().dimension == 3);
        CHECK(store->catalogue().count() == 1);
    }
    CHECK(Store::find_upward(dir.path() / "sub" / "deeper") == store_dir);

    SUBCASE("no store") { CHECK_THROWS_WITH_AS(Store::open(dir.path() / "none"), doctest::Contains("no cbir store"), Error); }
    SUBCASE("a text file in place of the catalogue") {
        std::ofstream(catalogue_file(store_dir), std::ios::trunc) << "not a database";
        std::filesystem::remove(store_dir / "catalogue.sqlite-wal");
        std::filesystem::remove(store_dir / "catalogue.sqlite-shm");
        CHECK_THROWS_WITH_AS(Store::open(store_dir), doctest::Contains("catalogue.sqlite"), Error);
    }
    SUBCASE("a newer store format") {
        {
            Catalogue c(catalogue_file(store_dir), CatalogueAccess::ReadWrite);
            Transaction txn(c);
            c.set_meta("format_version", "99");
            txn.commit();
        }
        CHECK_THROWS_WITH_AS(Store::open(store_dir), doctest::Contains("newer"), Error);
    }
}

TEST_CASE("catalogue: every generation has a token of its own, and a copy of a store draws new ones") {
    test::TempDir dir;
    const auto original = dir.path() / "a" / ".cbir";
    const auto copy = dir.path() / "b" / ".cbir";
    auto add = [](Store& store, const std::string& path, float value) {
        Transaction txn(store.catalogue());
        store.catalogue().upsert(record(path, value));
        txn.commit();
    };
    std::string id, token1;
    {
        auto store = Store::create(original, settings());
        id = store->catalogue().store_id();
        CHECK(id.size() == 32);
        CHECK(store->catalogue().state_token(0).size() == 32);
        add(*store, "/a.jpg", 1);
        token1 = store->catalogue().state_token(1);
        CHECK(token1.size() == 32);
        CHECK(token1 != store->catalogue().state_token(0));
    }
    std::filesystem::create_directories(copy.parent_path());
    std::filesystem::copy(original, copy);
    auto a = Store::open(original);
    auto b = Store::open(copy);
    CHECK(b->catalogue().store_id() == id);
    CHECK(b->catalogue().state_token(1) == token1);  // shared history
    add(*a, "/b.jpg", 2);
    add(*b, "/c.jpg", 3);
    REQUIRE(a->catalogue().generation() == 2);
    REQUIRE(b->catalogue().generation() == 2);
    CHECK(a->catalogue().state_token(2) != b->catalogue().state_token(2));  // diverged

    SUBCASE("read-only access reads everything and writes nothing") {
        a.reset();
        auto reader = Store::open(original, CatalogueAccess::ReadOnly);
        CHECK(reader->catalogue().count() == 2);
        CHECK(reader->catalogue().state_token(2).size() == 32);
        CHECK(reader->catalogue().read_only());
        CHECK_THROWS_AS(add(*reader, "/d.jpg", 4), Error);
    }
}
