// The pieces of `cbir serve` below HTTP: the batcher that shares forward passes between request
// threads, the per-route statistics, the reader of catalogued files, and which Host and Origin
// headers are this server's. The HTTP API itself is tested end to end (serve_test.py,
// serve_hostile_test.py).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <httplib.h>

#include "embed/embedder.h"
#include "image/image_file.h"
#include "pipeline/prepare.h"
#include "serve/catalogued_file.h"
#include "serve/embedding_batcher.h"
#include "serve/http_api.h"
#include "serve/http_server.h"
#include "serve/request_stats.h"
#include "serve/set_operations.h"
#include "test_support.h"
#include "util/file_stat.h"
#include "util/hash.h"

using namespace cbir;

TEST_CASE("serve: concurrent requests share forward passes and get their own image's vector") {
    EmbedderOptions options;
    options.optimize = false;
    auto embedder = Embedder::load(test::untrained_model(), options);
    const auto reference = test::reference_seed_features();
    std::vector<std::string> names;
    std::vector<std::vector<float>> inputs;
    for (const auto& [name, features] : reference) {
        PreparedImage image = prepare_image(test::seed_dir() / (name + ".jpg"), PreprocessSpec{});
        REQUIRE_MESSAGE(image.ok(), image.error);
        names.push_back(name);
        inputs.push_back(image.input);
    }
    EmbeddingBatcher batcher(*embedder, PreprocessSpec{}.values_per_image(), 8);
    constexpr int kRounds = 4;  // each of the 7 threads asks 4 times
    std::vector<std::vector<std::vector<float>>> answers(names.size());
    std::vector<std::thread> threads;
    for (size_t t = 0; t < names.size(); ++t)
        threads.emplace_back([&, t] {
            for (int r = 0; r < kRounds; ++r) answers[t].push_back(batcher.embed(inputs[t]));
        });
    for (auto& thread : threads) thread.join();

    CHECK(batcher.images_embedded() == names.size() * kRounds);
    CHECK(batcher.batches_run() < batcher.images_embedded());  // some passes carried several requests
    for (size_t t = 0; t < names.size(); ++t)
        for (const auto& vector : answers[t]) {
            CAPTURE(names[t]);
            CHECK(test::relative_l2_error(vector, reference.at(names[t])) < 0.005);  // its own, not a neighbour's
        }
    CHECK_THROWS(batcher.embed(std::vector<float>(10)));  // wrong input size: refused, not embedded
}

TEST_CASE("serve: request statistics count errors and take percentiles over a bounded window") {
    RequestStats stats(100);
    for (int i = 1; i <= 100; ++i) stats.record("POST /search", i == 7 ? 422 : 200, i);
    for (int i = 0; i < 100; ++i) stats.record("POST /search", 200, 1000);  // the window moves on
    stats.record("GET /health", 200, 0.5);
    const auto routes = stats.snapshot();
    REQUIRE(routes.size() == 2);
    const RouteStats& search = routes[1].route == "POST /search" ? routes[1] : routes[0];
    CHECK(search.requests == 200);
    CHECK(search.errors == 1);
    CHECK(search.p50_ms == 1000);
    CHECK(search.max_ms == 1000);

    RequestStats fresh(1000);
    for (int i = 1; i <= 100; ++i) fresh.record("r", 200, i);
    const RouteStats r = fresh.snapshot().front();
    CHECK(r.p50_ms == 50);
    CHECK(r.p99_ms == 99);
}

namespace {

void write_file(const std::filesystem::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

// The row `cbir index` would have made for the file as it is now.
ImageRecord catalogued(const std::filesystem::path& path) {
    std::string error;
    const std::string bytes = read_image_file(path).bytes;
    const FileStat st = *stat_file(path);
    ImageRecord record;
    record.id = 1;
    record.path = path.string();
    record.size = st.size;
    record.mtime_ns = st.mtime_ns;
    record.sha256 = sha256_hex(bytes.data(), bytes.size());
    return record;
}

void set_mtime_ns(const std::filesystem::path& path, int64_t mtime_ns) {
    const timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(mtime_ns / 1000000000), static_cast<long>(mtime_ns % 1000000000)}};
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

int status_of(const ImageRecord& record) {
    try {
        read_catalogued_file(record);
        return 200;
    } catch (const RequestError& e) {
        return e.status();
    }
}

}  // namespace

TEST_CASE("serve: a catalogued file is read only while it is what the catalogue says") {
    test::TempDir dir;
    const auto photo = dir.path() / "photo.jpg";
    std::filesystem::copy_file(test::seed_dir() / "dog1.jpg", photo);
    const ImageRecord record = catalogued(photo);
    std::string error;
    CHECK(read_catalogued_file(record) == read_image_file(photo).bytes);

    const auto original = read_image_file(photo).bytes;
    const auto secret = dir.path() / "secret";
    write_file(secret, "password=hunter2");
    SUBCASE("replaced by a symlink to another file") {
        std::filesystem::remove(photo);
        std::filesystem::create_symlink(secret, photo);
        CHECK(status_of(record) == 410);
    }
    SUBCASE("same size and mtime, other bytes") {
        std::string flipped = original;
        for (char& c : flipped) c = static_cast<char>(~c);
        write_file(photo, flipped);
        set_mtime_ns(photo, record.mtime_ns);
        CHECK(status_of(record) == 410);
    }
    SUBCASE("a FIFO in its place is refused without waiting for a writer") {
        std::filesystem::remove(photo);
        REQUIRE(::mkfifo(photo.c_str(), 0644) == 0);
        CHECK(status_of(record) == 410);
    }
    SUBCASE("gone") {
        std::filesystem::remove(photo);
        CHECK(status_of(record) == 410);
    }
    SUBCASE("a symlink to an identical copy is the same file to the catalogue") {
        const auto copy = dir.path() / "copy.jpg";
        std::filesystem::copy_file(photo, copy);
        set_mtime_ns(copy, record.mtime_ns);
        std::filesystem::remove(photo);
        std::filesystem::create_symlink(copy, photo);
        CHECK(status_of(record) == 200);
    }
}

TEST_CASE("serve: Host must name this server, Origin must be its own for requests that act") {
    const std::vector<std::string> none;
    for (const char* host : {"127.0.0.1:19121", "127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:19121", "10.1.2.3:80", ""})
        CHECK_MESSAGE(host_allowed(host, "127.0.0.1", none), host);
    for (const char* host : {"evil.example", "evil.example:19121", "localhost.evil.example:19121", "127.0.0.1.nip.io:19121", "[::1"})
        CHECK_MESSAGE(!host_allowed(host, "127.0.0.1", none), host);
    CHECK(host_allowed("photos.lan:19121", "photos.lan", none));  // the --host given
    CHECK(host_allowed("Photos.LAN.:19121", "0.0.0.0", {"photos.lan"}));  // an --allow-host name
    CHECK(host_allowed("[::1]:19121", "::1", none));

    CHECK(origin_allowed("", "127.0.0.1:19121"));
    CHECK(origin_allowed("http://127.0.0.1:19121", "127.0.0.1:19121"));
    CHECK(origin_allowed("HTTP://LocalHost:19121", "localhost:19121"));
    CHECK(!origin_allowed("http://localhost:19121", "127.0.0.1:19121"));  // another origin, same machine
    CHECK(!origin_allowed("http://evil.example", "127.0.0.1:19121"));
    CHECK(!origin_allowed("null", "127.0.0.1:19121"));
    CHECK(!origin_allowed("http://127.0.0.1:8000", "127.0.0.1:19121"));
}

namespace {

// A client socket on 127.0.0.1:port, closed when it goes; reads time out after 10 s.
class ClientSocket {
public:
    explicit ClientSocket(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(static_cast<uint16_t>(port));
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        const timeval timeout{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    }
    ~ClientSocket() { ::close(fd_); }
    void send(const std::string& text) { REQUIRE(::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == ssize_t(text.size())); }
    // What arrives until the server closes the connection or stops sending for 10 s.
    std::string receive_some() {
        char buffer[4096];
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        return n > 0 ? std::string(buffer, size_t(n)) : std::string();
    }

private:
    int fd_;
};

}  // namespace

TEST_CASE("serve: past the connection limit an idle connection makes room, or the newcomer gets 503, and stop() is prompt") {
    ConnectionLimits limits;
    limits.max_connections = 2;
    limits.stop_grace_seconds = 5;
    HttpServer server(limits);
    server.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok", "text/plain"); });
    const int port = server.bind("127.0.0.1", 0);
    REQUIRE(port > 0);
    std::thread runner([&] { server.run(); });
    const auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };

    ClientSocket idle(port);  // connected, silent
    ClientSocket slow(port);  // in the middle of its headers: busy
    slow.send("GET /health HTTP/1.1\r\nHo");
    settle();
    ClientSocket fresh(port);
    fresh.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(fresh.receive_some().rfind("HTTP/1.1 200", 0) == 0);
    CHECK(idle.receive_some().empty());  // closed to make room
    CHECK(server.connection_counts().evicted == 1);

    fresh.send("GET /health HTTP/1.1\r\nHo");  // now both are busy
    settle();
    ClientSocket refused(port);
    const std::string answer = refused.receive_some();
    CHECK(answer.rfind("HTTP/1.1 503", 0) == 0);
    CHECK(answer.find("Connection: close") != std::string::npos);
    CHECK(server.connection_counts().refused == 1);

    // Requests still sending their headers are not in flight: a stop does not wait for them.
    const auto started = std::chrono::steady_clock::now();
    server.stop();
    runner.join();
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
}

TEST_CASE("serve: what crosses the ranks of a served set comes back intact, and a message cut short is refused") {
    using namespace cbir;
    SearchRequest request;
    request.k = 7;
    request.ef = 64;
    request.max_distance = 2.5f;
    const std::vector<std::string> operations{search_operation({1.0f, -2.0f, 3.5f}, request),
                                              id_operation(SetOp::RemoveId, (int64_t(3) << 48) | 17),
                                              text_operation(SetOp::RemovePath, std::string("/a/b\0c.jpg", 10)),
                                              shard_operation(SetOp::AddUpload, 2, std::string(1000, '\xff')),
                                              bare_operation(SetOp::Stop)};
    const auto batch = encode_batch(operations);
    CHECK(decode_batch(batch) == operations);
    CHECK(operation_code(operations[0]) == SetOp::Search);
    CHECK(operation_code(operations[4]) == SetOp::Stop);
    CHECK(is_read(SetOp::Search));
    CHECK_FALSE(is_read(SetOp::AddPath));

    const std::vector<SetAnswer> answers{{SetAnswer::Kind::None, {}, 0, {}},
                                         {SetAnswer::Kind::Value, std::string("v\0w", 3), 0, {}},
                                         {SetAnswer::Kind::Failed, {}, 404, "no image with id 5"}};
    const auto encoded = encode_answers(answers);
    const auto decoded = decode_answers(encoded);
    REQUIRE(decoded.size() == 3);
    CHECK(decoded[0].kind == SetAnswer::Kind::None);
    CHECK(decoded[1].value == answers[1].value);
    CHECK(decoded[2].status == 404);
    CHECK(decoded[2].message == "no image with id 5");
    // Every prefix of a message is refused with an error, never read past its end.
    for (size_t n = 0; n < encoded.size(); ++n) CHECK_THROWS_AS(decode_answers(encoded.substr(0, n)), Error);
    for (size_t n = 0; n < batch.size(); n += 7) CHECK_THROWS_AS(decode_batch(batch.substr(0, n)), Error);
}
