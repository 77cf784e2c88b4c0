#include "dataplane/huge_tmpfs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace tern {

bool memfd_has_huge_pages() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  std::string setting;
  std::getline(f, setting);  // "always within_size advise [never] deny force"
  // "advise" gives huge pages only to faults through a mapping that asked for them, not to
  // write(2) nor to another process's mapping.
  return setting.find("[always]") != std::string::npos ||
         setting.find("[within_size]") != std::string::npos ||
         setting.find("[force]") != std::string::npos;
}

bool mapping_thp_eligible(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  char head[32];
  snprintf(head, sizeof head, "%lx-", reinterpret_cast<unsigned long>(start));
  bool in_vma = false;
  for (std::string line; std::getline(smaps, line);) {
    if (!in_vma) {
      in_vma = line.rfind(head, 0) == 0;  // the mapping's header line "start-end perms ..."
    } else if (line.rfind("THPeligible:", 0) == 0) {
      return line.find('1') != std::string::npos;
    } else if (const size_t hex = line.find_first_not_of("0123456789abcdef");
               hex != 0 && hex != std::string::npos && line[hex] == '-') {
      return false;  // the next mapping's header: no THPeligible line in this kernel
    }
  }
  return false;
}

Result<int> open_huge_tmpfs_file(uint64_t size) {
  const int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fs < 0) return errno_status("fsopen(tmpfs)");
  // Room for the file rounded up to a huge page; no inode limit beyond the one file.
  const std::string room = std::to_string((size + (2u << 20) - 1) / (2u << 20) * (2u << 20));
  int mnt = -1;
  if (fsconfig(fs, FSCONFIG_SET_STRING, "huge", "within_size", 0) != 0 ||
      fsconfig(fs, FSCONFIG_SET_STRING, "size", room.c_str(), 0) != 0 ||
      fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0) != 0 ||
      fsconfig(fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0 ||
      (mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSUID |
                                              MOUNT_ATTR_NODEV)) < 0) {
    const int err = errno;
    close(fs);
    return errno_status("a private tmpfs with huge=within_size", err);
  }
  close(fs);
  const int fd = openat(mnt, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  const int err = errno;
  close(mnt);  // the open file keeps the instance alive
  if (fd < 0) return errno_status("a file on a private tmpfs", err);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    const int terr = errno;
    close(fd);
    return errno_status("ftruncate of a private tmpfs file to " + std::to_string(size), terr);
  }
  return fd;
}

}  // namespace tern
