#include "control/qmp_stream.h"

namespace tern::control {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Bytes that may appear outside strings in some valid JSON (the parser checks the order).
bool is_token_byte(unsigned char c) {
  return is_space(c) || c == ',' || c == ':' || c == '-' || c == '+' || c == '.' ||
         (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string byte_name(unsigned char c) { return sanitize_excerpt(std::string_view(
    reinterpret_cast<const char*>(&c), 1)); }

}  // namespace

void JsonStreamReader::reset() {
  text_.clear();
  closers_.clear();
  in_string_ = false;
  escape_ = false;
}

void JsonStreamReader::fail(std::string error, std::vector<StreamItem>& out) {
  reset();
  skipping_ = true;
  out.push_back({false, {}, "JSON parse error, " + std::move(error)});
}

void JsonStreamReader::feed(std::string_view data, std::vector<StreamItem>& out) {
  for (size_t i = 0; i < data.size(); ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (skipping_) {
      if (c == '\n') skipping_ = false;
      continue;
    }
    if (closers_.empty()) {  // between values
      if (is_space(c)) continue;
      if (c != '{' && c != '[') {
        fail("expecting a JSON object, got " + byte_name(c), out);
        continue;
      }
    }
    if (text_.size() >= limits_.max_object_bytes) {
      fail("object longer than " + std::to_string(limits_.max_object_bytes) + " bytes", out);
      if (c == '\n') skipping_ = false;
      continue;
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      } else if (c < 0x20) {
        fail("control character " + byte_name(c) + " in a string", out);
        if (c == '\n') skipping_ = false;
        continue;
      }
      text_.push_back(static_cast<char>(c));
      continue;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      if (closers_.size() >= limits_.max_depth) {
        fail("nesting deeper than " + std::to_string(limits_.max_depth) + " levels", out);
        continue;
      }
      closers_.push_back(c == '{' ? '}' : ']');
    } else if (c == '}' || c == ']') {
      if (closers_.back() != static_cast<char>(c)) {
        fail(std::string("unbalanced '") + static_cast<char>(c) + "'", out);
        continue;
      }
      closers_.pop_back();
      if (closers_.empty()) {
        text_.push_back(static_cast<char>(c));
        out.push_back({true, std::move(text_), {}});
        reset();
        continue;
      }
    } else if (!is_token_byte(c)) {
      fail("unexpected byte " + byte_name(c), out);
      continue;
    }
    text_.push_back(static_cast<char>(c));
  }
}

std::string sanitize_excerpt(std::string_view text, size_t max) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  size_t n = text.size() < max ? text.size() : max;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (n < text.size()) out += "...";
  return out;
}

std::string utf8_truncate(std::string_view s, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool valid = len != 0 && i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    }
    // Overlong forms, surrogates and values past U+10FFFF are not valid either.
    if (valid && len > 1) {
      uint32_t cp = c & (0x7f >> len);
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
      static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      valid = cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    }
    if (!valid) len = 1;
    if (out.size() + (valid ? len : 1) > max) break;
    if (valid) {
      out.append(s.substr(i, len));
    } else {
      out.push_back('?');
    }
    i += len;
  }
  return out;
}

}  // namespace tern::control
