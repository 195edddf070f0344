# The Debian package (scripts/package.sh -> build/lanesync_<version>-1_<arch>.deb), built with
# CPack from these install rules. What it holds and why: README "Installing on a lane";
# tests/integration/test_package.py checks it.
#
#   /usr/bin/lanesync
#   /lib/systemd/system/lanesync@.service            one instance per lane (packaging/)
#   /usr/share/lanesync/supabase/functions/<each>/   every edge function folder, by glob
#   /usr/share/lanesync/supabase/migrations/         the SQL migrations
#   /usr/share/lanesync/supabase/config.toml         Supabase CLI settings (verify_jwt = false)
#   /usr/share/doc/lanesync/                         README, docs/*.md, example.env, copyright,
#                                                    changelog.Debian.gz
# Maintainer scripts (packaging/postinst, prerm, postrm) create the user lanesync and
# /etc/lanesync; purging never removes /var/lib/lanesync (the outboxes).

set(pkg_src ${PROJECT_SOURCE_DIR}/packaging)
set(supabase_src ${PROJECT_SOURCE_DIR}/cloud/supabase)

# Full RELRO with immediate binding for the shipped binary (a relink only; lintian
# hardening-no-bindnow). _FORTIFY_SOURCE would recompile every object: see the docs.
target_link_options(lanesync PRIVATE -Wl,-z,relro -Wl,-z,now)
install(TARGETS lanesync RUNTIME DESTINATION bin)
# Debian 12 ships units under /lib/systemd/system (lintian: systemd-service-file-outside-lib).
install(FILES ${pkg_src}/lanesync@.service DESTINATION /lib/systemd/system)

# Every edge function folder, so a new function ships without editing this file. Their tests
# and test helpers stay out (they need a local cloud and are never deployed).
file(GLOB function_dirs LIST_DIRECTORIES true CONFIGURE_DEPENDS ${supabase_src}/functions/*)
foreach(dir IN LISTS function_dirs)
  if(IS_DIRECTORY ${dir})
    install(DIRECTORY ${dir} DESTINATION share/lanesync/supabase/functions
            PATTERN "*.test.ts" EXCLUDE PATTERN "testing.ts" EXCLUDE)
  endif()
endforeach()
install(DIRECTORY ${supabase_src}/migrations DESTINATION share/lanesync/supabase)
install(FILES ${supabase_src}/config.toml DESTINATION share/lanesync/supabase)

file(GLOB doc_files CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${doc_files} ${pkg_src}/example.env
              ${pkg_src}/copyright
        DESTINATION share/doc/lanesync)
# Debian wants the changelog gzipped with no timestamp (gzip -n), at maximum compression.
set(changelog_gz ${PROJECT_BINARY_DIR}/packaging/changelog.Debian.gz)
add_custom_command(
  OUTPUT ${changelog_gz}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/packaging
  COMMAND sh -c "gzip -9nc '${pkg_src}/changelog' > '${changelog_gz}'"
  DEPENDS ${pkg_src}/changelog
  VERBATIM)
add_custom_target(lanesync_changelog ALL DEPENDS ${changelog_gz})
install(FILES ${changelog_gz} DESTINATION share/doc/lanesync)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME lanesync)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "lanesync maintainers <maintainers@lanesync.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "lane agent for retail point-of-sale")
# One string (a CMake list would put ';' between the lines); CPack indents each line.
string(CONCAT CPACK_DEBIAN_PACKAGE_DESCRIPTION
       "Every checkout lane runs one agent. It writes each sale, stock movement and\n"
       "customer change to a local SQLite outbox, replicates it to the other lanes\n"
       "of the store over authenticated WebSockets, and uploads it to a Supabase\n"
       "Edge Function that applies it exactly once in Postgres.\n"
       "\n"
       "This package holds the agent, a systemd template unit (lanesync@LANE), and\n"
       "the edge functions and migrations to deploy with the Supabase CLI.")
# Debian revision 1 of upstream version PROJECT_VERSION: lanesync_0.1.0-1_amd64.deb.
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Dependencies from the shared libraries actually linked (dpkg-shlibdeps), plus adduser for
# postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${pkg_src}/postinst ${pkg_src}/prerm ${pkg_src}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_SOURCE_GENERATOR "")
include(CPack)
