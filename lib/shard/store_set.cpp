#include "shard/store_set.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "store/file_identity.h"
#include "store/store.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/read_file.h"
#include "util/words.h"

namespace cbir {
namespace {

constexpr const char* kFormat = "cbir-store-set";
constexpr int kVersion = 1;
constexpr const char* kPlacement = "sha256-of-relative-path-mod-shards";
constexpr size_t kMaxManifestBytes = 1 << 20;

std::string to_json(const SetManifest& m) {
    nlohmann::json j;
    j["format"] = kFormat;
    j["version"] = kVersion;
    j["shards"] = m.shards;
    j["placement"] = kPlacement;
    j["root"] = m.root;
    j["model_path"] = m.model_path;
    j["model_sha256"] = m.model_sha256;
    j["metric"] = metric_name(m.metric);
    j["index"] = m.index.describe();
    return j.dump(2) + "\n";
}

SetManifest from_json(const std::filesystem::path& file, const std::string& text) {
    auto bad = [&](const std::string& cause) { return Error(fmt::format("{}: not a cbir store set manifest: {}", file.string(), cause)); };
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) throw bad("not JSON");
    try {
        if (j.value("format", "") != kFormat) throw bad("format is not " + std::string(kFormat));
        if (j.value("version", 0) != kVersion)
            throw bad(fmt::format("version {} (this cbir reads version {})", j.value("version", 0), kVersion));
        if (j.value("placement", "") != kPlacement) throw bad("unknown placement " + j.value("placement", std::string()));
        SetManifest m;
        // get<int>() would take 3.5 as 3.
        if (!j.at("shards").is_number_integer()) throw bad("shards is not a whole number");
        m.shards = j.at("shards").get<int>();
        if (m.shards < 1 || m.shards > kMaxShards) throw bad(fmt::format("shards must be 1–{}", kMaxShards));
        m.root = j.at("root").get<std::string>();
        m.model_path = j.at("model_path").get<std::string>();
        m.model_sha256 = j.at("model_sha256").get<std::string>();
        auto metric = parse_metric(j.at("metric").get<std::string>());
        if (!metric) throw bad("unknown metric");
        m.metric = *metric;
        std::string error;
        auto index = parse_index_spec(j.at("index").get<std::string>(), IndexSpec{}, &error);
        if (!index) throw bad("index: " + error);
        m.index = *index;
        return m;
    } catch (const nlohmann::json::exception& e) {
        throw bad(e.what());
    }
}

// What must agree between a set and a task that joins it; empty when they agree.
std::string disagreement(const SetManifest& have, const SetManifest& want) {
    if (have.shards != want.shards) return fmt::format("it has {} shards, not {}", have.shards, want.shards);
    if (have.root != want.root) return fmt::format("its root is {}, not {}", have.root, want.root);
    if (have.model_sha256 != want.model_sha256)
        return fmt::format("it was made with model sha256 {}, not {}", have.model_sha256, want.model_sha256);
    if (have.metric != want.metric) return fmt::format("its metric is {}, not {}", metric_name(have.metric), metric_name(want.metric));
    if (have.index.describe() != want.index.describe())
        return fmt::format("its index is {}, not {}", have.index.describe(), want.index.describe());
    return {};
}

}  // namespace

int shard_of_key(const std::string& catalogue_key, const std::string& root, int shards) {
    std::string_view placed = catalogue_key;
    if (!root.empty() && placed.size() > root.size() && placed.compare(0, root.size(), root) == 0 &&
        (root.back() == '/' || placed[root.size()] == '/'))
        placed.remove_prefix(root.back() == '/' ? root.size() : root.size() + 1);
    const std::string digest = sha256_hex(placed.data(), placed.size());
    const uint64_t prefix = std::stoull(digest.substr(0, 16), nullptr, 16);
    return static_cast<int>(prefix % static_cast<uint64_t>(shards));
}

std::vector<int> shards_of_task(int shards, int task, int tasks) {
    std::vector<int> out;
    if (tasks < 1 || task < 0) return out;
    for (int s = task; s < shards; s += tasks) out.push_back(s);
    return out;
}

// Absolute and normal, as catalogue keys are: the uploads' keys are recognised under it.
StoreSet::StoreSet(const std::filesystem::path& dir, SetManifest manifest)
    : dir_(catalogue_key(dir)), manifest_(std::move(manifest)) {}

bool StoreSet::exists(const std::filesystem::path& dir) {
    std::error_code ec;
    return std::filesystem::is_regular_file(dir / kSetManifestName, ec);
}

StoreSet StoreSet::open(const std::filesystem::path& dir) {
    const auto file = dir / kSetManifestName;
    std::string error;
    auto opened = RegularFile::open(file, error);
    std::string text;
    if (!opened || !opened->read_until(text, kMaxManifestBytes + 1, error))
        throw Error(fmt::format("{}: {}", file.string(), error));
    if (text.size() > kMaxManifestBytes) throw Error(fmt::format("{}: {}", file.string(), file_too_large_message(text.size(), kMaxManifestBytes)));
    StoreSet set(dir, from_json(file, text));
    // A shard folder past the manifest's count holds images no command would search or check: the
    // manifest was edited, or another set's shard copied in. Said, never skipped silently.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        int number = -1;
        if (name.size() == 10 && name.rfind("shard-", 0) == 0 && name.find_first_not_of("0123456789", 6) == std::string::npos)
            number = std::stoi(name.substr(6));
        if (number >= set.shards())
            throw Error(fmt::format("{}: holds {}, but its manifest says {} (was set.json edited, or another set's "
                                    "shard copied in?); a set's number of shards is fixed when it is made",
                                    dir.string(), name, counted(set.shards(), "shard")));
    }
    return set;
}

StoreSet StoreSet::create_or_join(const std::filesystem::path& dir, const SetManifest& wanted) {
    if (wanted.shards < 1 || wanted.shards > kMaxShards)
        throw Error(fmt::format("{}: --shards must be 1–{}", dir.string(), kMaxShards));
    if (Store::exists(dir))
        throw Error(fmt::format("{}: is a single store, not a set; give a new --store for a set of {} shards", dir.string(),
                                wanted.shards));
    for (auto parent = dir.parent_path(); !parent.empty() && parent != parent.root_path(); parent = parent.parent_path())
        if (exists(parent) || Store::exists(parent))
            throw Error(fmt::format("{}: is inside the store {}; a set is made in a folder of its own", dir.string(),
                                    parent.string()));
    if (!exists(dir)) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) throw Error(fmt::format("{}: cannot create the set's folder: {}", dir.string(), ec.message()));
        // Written whole to a private name, then linked into place: link() fails if another task's
        // manifest got there first, so exactly one manifest is ever published, complete.
        const std::string text = to_json(wanted);
        const auto temp = dir / fmt::format("{}.tmp-{}-{}", kSetManifestName, ::getpid(), std::random_device{}());
        {
            std::ofstream out(temp, std::ios::binary);
            out << text;
            out.flush();
            if (!out) throw Error(fmt::format("{}: cannot write: {}", (dir / kSetManifestName).string(), std::strerror(errno)));
        }
        if (int fd = ::open(temp.c_str(), O_RDONLY); fd >= 0) {
            ::fsync(fd);
            ::close(fd);
        }
        const int linked = ::link(temp.c_str(), (dir / kSetManifestName).c_str());
        const int link_errno = errno;
        std::filesystem::remove(temp, ec);
        if (linked != 0 && link_errno != EEXIST)
            throw Error(fmt::format("{}: cannot create: {}", (dir / kSetManifestName).string(), std::strerror(link_errno)));
        sync_directory(dir);
    }
    StoreSet set = open(dir);
    if (auto why = disagreement(set.manifest(), wanted); !why.empty())
        throw Error(fmt::format("{}: this set cannot be extended as asked: {}", dir.string(), why));
    return set;
}

std::filesystem::path StoreSet::shard_dir(int shard) const { return dir_ / fmt::format("shard-{:04d}", shard); }

void StoreSet::update_index(const IndexSpec& index) {
    manifest_.index = index;
    const std::string text = to_json(manifest_);
    AtomicFileWriter out(dir_ / kSetManifestName);
    out.write(text.data(), text.size());
    out.commit();
}

std::string StoreSet::shard_disagreement(const StoreSettings& shard) const {
    if (shard.metric != manifest_.metric)
        return fmt::format("its metric is {}, the set's {}", metric_name(shard.metric), metric_name(manifest_.metric));
    if (shard.model_sha256 != manifest_.model_sha256)
        return fmt::format("it was made with model sha256 {}, the set with {}", shard.model_sha256, manifest_.model_sha256);
    return {};
}

int StoreSet::shard_of_upload(const std::string& content_sha256) const {
    return shard_of_key(content_sha256, "", manifest_.shards);
}

int StoreSet::shard_of(const std::string& catalogue_key) const {
    // A file uploaded to `cbir serve` is kept as <set>/shard-NNNN/uploads/<sha256>.<ext>: it is placed
    // by its content, the name it is stored under.
    const std::filesystem::path key(catalogue_key);
    const std::filesystem::path folder = key.parent_path();
    const std::string stem = key.stem().string();
    if (folder.filename() == "uploads" && folder.parent_path().parent_path() == dir_ &&
        folder.parent_path().filename().string().rfind("shard-", 0) == 0 && stem.size() == 64 &&
        stem.find_first_not_of("0123456789abcdef") == std::string::npos)
        return shard_of_upload(stem);
    return shard_of_key(catalogue_key, manifest_.root, manifest_.shards);
}

}  // namespace cbir

namespace cbir {

std::vector<std::pair<std::string, std::string>> describe_set(const StoreSet& set) {
    const SetManifest& m = set.manifest();
    std::vector<std::pair<std::string, std::string>> out;
    out.emplace_back("set", set.dir().string());
    out.emplace_back("shards", std::to_string(m.shards));
    out.emplace_back("placement_root", m.root);
    out.emplace_back("model", m.model_path);
    out.emplace_back("model_sha256", m.model_sha256);
    out.emplace_back("metric", metric_name(m.metric) + " (" + metric_description(m.metric) + ")");
    out.emplace_back("index", m.index.describe());
    size_t total = 0;
    int missing = 0;
    std::vector<int> unfinished;
    std::vector<std::pair<std::string, std::string>> per_shard;
    for (int shard = 0; shard < m.shards; ++shard) {
        std::string value;
        if (!Store::exists(set.shard_dir(shard))) {
            value = "no store yet (run its index task)";
            ++missing;
        } else {
            const auto store = Store::open(set.shard_dir(shard), CatalogueAccess::ReadOnly);
            const size_t count = store->catalogue().count();
            total += count;
            value = std::to_string(count);
            if (const std::string run = store->unfinished_index_run(); !run.empty()) {
                value += " (its index run did not finish: " + run + ")";
                unfinished.push_back(shard);
            }
        }
        per_shard.emplace_back(fmt::format("shard_{:04d}_images", shard), value);
    }
    out.emplace_back("images", std::to_string(total));
    std::vector<std::string> gaps;
    if (missing) gaps.push_back(counted(missing, "shard") + " without a store");
    if (!unfinished.empty())
        gaps.push_back(fmt::format("{} whose index run did not finish: {}", counted(unfinished.size(), "shard"),
                                   fmt::join(unfinished, ", ")));
    out.emplace_back("complete", gaps.empty() ? "yes" : fmt::format("no ({})", fmt::join(gaps, "; ")));
    out.insert(out.end(), per_shard.begin(), per_shard.end());
    return out;
}

}  // namespace cbir
