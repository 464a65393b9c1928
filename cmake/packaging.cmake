# Installation layout and the Debian package (CPack, DEB generator).
#
#   deploy/build-deb.sh        release build + cpack: build/package/lanrelay_<version>_<arch>.deb
#   or by hand:                cmake --build --preset release --target lanrelay_package_binaries
#                              cpack --config build/release/CPackConfig.cmake -B DIR
#
# Paths in the package: /usr/sbin/lanrelayd, /usr/bin/lanrelay, /usr/lib/systemd/system/*.service,
# /etc/lanrelay/*.toml (conffiles), /usr/share/doc/lanrelay/. The maintainer scripts in
# deploy/debian/ create the `lanrelay` system user and /var/lib/lanrelay (and, with proxyhelperd,
# the `lanrelay-proxy` user and /var/lib/proxyhelperd), and remove them on purge.
# proxyhelperd (binary, unit, configuration) is packaged when its target exists.

set(lanrelay_deploy ${PROJECT_SOURCE_DIR}/deploy)

# lanrelay_install_conffile(SOURCE NAME): installs SOURCE as /etc/lanrelay/NAME, listed as a dpkg
# conffile (an administrator's changes survive upgrades). Readable by its daemon's group only:
# postinst sets root:lanrelay (root:lanrelay-proxy for proxyhelperd.toml) 0640, since
# configurations may hold secrets.
function(lanrelay_install_conffile source name)
  install(FILES ${source} DESTINATION /etc/lanrelay RENAME ${name}
          PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
  set_property(GLOBAL APPEND PROPERTY LANRELAY_CONFFILES /etc/lanrelay/${name})
endfunction()

# The binaries are installed by their own directories (relay/, cli/); this target builds exactly
# what the package holds, without the test suite.
add_custom_target(lanrelay_package_binaries DEPENDS lanrelayd lanrelay)

install(FILES ${lanrelay_deploy}/systemd/lanrelayd.service DESTINATION lib/systemd/system)
lanrelay_install_conffile(${lanrelay_deploy}/etc/lanrelayd.toml lanrelayd.toml)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${lanrelay_deploy}/debian/copyright
        DESTINATION share/doc/lanrelay)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/lanrelay)

# proxyhelperd and the package metadata are settled once the whole tree is configured, so the
# order of add_subdirectory() and include() calls in CMakeLists.txt does not matter.
function(lanrelay_finish_packaging)
  if(TARGET proxyhelperd)
    add_dependencies(lanrelay_package_binaries proxyhelperd)
    install(TARGETS proxyhelperd RUNTIME DESTINATION sbin)
    install(FILES ${lanrelay_deploy}/systemd/proxyhelperd.service DESTINATION lib/systemd/system)
    if(EXISTS ${lanrelay_deploy}/etc/proxyhelperd.toml)
      lanrelay_install_conffile(${lanrelay_deploy}/etc/proxyhelperd.toml proxyhelperd.toml)
    else()
      message(WARNING "deploy/etc/proxyhelperd.toml is missing: the packaged proxyhelperd.service "
                      "(--config /etc/lanrelay/proxyhelperd.toml) cannot start; add that file")
    endif()
  endif()

  get_property(conffiles GLOBAL PROPERTY LANRELAY_CONFFILES)
  list(JOIN conffiles "\n" conffiles_text)
  file(WRITE ${PROJECT_BINARY_DIR}/debian/conffiles "${conffiles_text}\n")

  set(CPACK_GENERATOR DEB)
  set(CPACK_PACKAGE_NAME lanrelay)
  set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
  set(CPACK_PACKAGE_CONTACT "lanrelay maintainers <dev@lanrelay.invalid>")
  set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
      "LAN relay for security agents' installers and pattern files")
  set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "lanrelayd keeps the downloads of security agents on the \
LAN: one machine per segment holds installers and pattern files and serves them to the agents \
of its segment, which find them by a segment query. The lanrelay command manages its cache and \
fetches items as an agent.")
  set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
  set(CPACK_STRIP_FILES ON)
  set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # lanrelay_<version>_<arch>.deb
  set(CPACK_DEBIAN_PACKAGE_SECTION net)
  set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # library dependencies from dpkg-shlibdeps
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, init-system-helpers")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
      ${lanrelay_deploy}/debian/postinst ${lanrelay_deploy}/debian/prerm
      ${lanrelay_deploy}/debian/postrm ${PROJECT_BINARY_DIR}/debian/conffiles)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
  include(CPack)
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL lanrelay_finish_packaging)
