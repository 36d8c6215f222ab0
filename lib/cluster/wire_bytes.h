#pragma once
// A flat little-endian byte format for what crosses the ranks of a job (all ranks run the same
// binary on the same kind of machine): values appended in order and read back in the same order,
// every read bounds-checked, so a message cut short is an error, never a read past its end.
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "util/error.h"

namespace cbir {

class WireBytes {
public:
    explicit WireBytes(std::string data = {}) : data_(std::move(data)) {}
    template <typename T>
    void put(T value) { data_.append(reinterpret_cast<const char*>(&value), sizeof value); }
    void put_bytes(const void* p, size_t n) { data_.append(static_cast<const char*>(p), n); }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        data_ += s;
    }
    void put_floats(const std::vector<float>& v) {
        put<uint64_t>(v.size());
        put_bytes(v.data(), v.size() * sizeof(float));
    }
    template <typename T>
    T get() {
        T value{};
        take(&value, sizeof value);
        return value;
    }
    void take(void* p, size_t n) {
        if (data_.size() - pos_ < n) throw Error("a message between ranks was cut short");
        std::memcpy(p, data_.data() + pos_, n);
        pos_ += n;
    }
    std::string get_string() {
        const uint64_t n = get<uint64_t>();
        if (data_.size() - pos_ < n) throw Error("a message between ranks was cut short");
        std::string s = data_.substr(pos_, n);
        pos_ += n;
        return s;
    }
    std::vector<float> get_floats() {
        const uint64_t n = get<uint64_t>();
        if ((data_.size() - pos_) / sizeof(float) < n) throw Error("a message between ranks was cut short");
        std::vector<float> v(n);
        take(v.data(), n * sizeof(float));
        return v;
    }
    bool at_end() const { return pos_ == data_.size(); }
    std::string& data() { return data_; }

private:
    std::string data_;
    size_t pos_ = 0;
};

}  // namespace cbir
