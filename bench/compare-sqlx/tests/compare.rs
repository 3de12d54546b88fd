//! The comparison suite: 200 tests on schema40, each emitted twice by `comparison_suite!`,
//! once under `#[sqlx::test]` (module `with_sqlx`: a new database per test, migrations replayed)
//! and once under `#[dbsandbox::test]` (module `with_dbsandbox`: a sandbox cloned from a template
//! built once). `run.sh` times `-- with_sqlx` against `-- with_dbsandbox`.

use dbsandbox_compare_sqlx::scenario;

macro_rules! comparison_suite {
    ($($name:ident = $n:expr),* $(,)?) => {
        mod with_sqlx {
            use super::scenario;
            $(
                #[sqlx::test(migrations = "./migrations")]
                async fn $name(pool: sqlx::PgPool) {
                    scenario(&pool, $n).await;
                }
            )*
        }

        mod with_dbsandbox {
            use super::scenario;
            $(
                #[dbsandbox::test]
                async fn $name(pool: sqlx::PgPool) {
                    scenario(&pool, $n).await;
                }
            )*
        }
    };
}

comparison_suite! {
    t000 = 0, t001 = 1, t002 = 2, t003 = 3, t004 = 4,
    t005 = 5, t006 = 6, t007 = 7, t008 = 8, t009 = 9,
    t010 = 10, t011 = 11, t012 = 12, t013 = 13, t014 = 14,
    t015 = 15, t016 = 16, t017 = 17, t018 = 18, t019 = 19,
    t020 = 20, t021 = 21, t022 = 22, t023 = 23, t024 = 24,
    t025 = 25, t026 = 26, t027 = 27, t028 = 28, t029 = 29,
    t030 = 30, t031 = 31, t032 = 32, t033 = 33, t034 = 34,
    t035 = 35, t036 = 36, t037 = 37, t038 = 38, t039 = 39,
    t040 = 40, t041 = 41, t042 = 42, t043 = 43, t044 = 44,
    t045 = 45, t046 = 46, t047 = 47, t048 = 48, t049 = 49,
    t050 = 50, t051 = 51, t052 = 52, t053 = 53, t054 = 54,
    t055 = 55, t056 = 56, t057 = 57, t058 = 58, t059 = 59,
    t060 = 60, t061 = 61, t062 = 62, t063 = 63, t064 = 64,
    t065 = 65, t066 = 66, t067 = 67, t068 = 68, t069 = 69,
    t070 = 70, t071 = 71, t072 = 72, t073 = 73, t074 = 74,
    t075 = 75, t076 = 76, t077 = 77, t078 = 78, t079 = 79,
    t080 = 80, t081 = 81, t082 = 82, t083 = 83, t084 = 84,
    t085 = 85, t086 = 86, t087 = 87, t088 = 88, t089 = 89,
    t090 = 90, t091 = 91, t092 = 92, t093 = 93, t094 = 94,
    t095 = 95, t096 = 96, t097 = 97, t098 = 98, t099 = 99,
    t100 = 100, t101 = 101, t102 = 102, t103 = 103, t104 = 104,
    t105 = 105, t106 = 106, t107 = 107, t108 = 108, t109 = 109,
    t110 = 110, t111 = 111, t112 = 112, t113 = 113, t114 = 114,
    t115 = 115, t116 = 116, t117 = 117, t118 = 118, t119 = 119,
    t120 = 120, t121 = 121, t122 = 122, t123 = 123, t124 = 124,
    t125 = 125, t126 = 126, t127 = 127, t128 = 128, t129 = 129,
    t130 = 130, t131 = 131, t132 = 132, t133 = 133, t134 = 134,
    t135 = 135, t136 = 136, t137 = 137, t138 = 138, t139 = 139,
    t140 = 140, t141 = 141, t142 = 142, t143 = 143, t144 = 144,
    t145 = 145, t146 = 146, t147 = 147, t148 = 148, t149 = 149,
    t150 = 150, t151 = 151, t152 = 152, t153 = 153, t154 = 154,
    t155 = 155, t156 = 156, t157 = 157, t158 = 158, t159 = 159,
    t160 = 160, t161 = 161, t162 = 162, t163 = 163, t164 = 164,
    t165 = 165, t166 = 166, t167 = 167, t168 = 168, t169 = 169,
    t170 = 170, t171 = 171, t172 = 172, t173 = 173, t174 = 174,
    t175 = 175, t176 = 176, t177 = 177, t178 = 178, t179 = 179,
    t180 = 180, t181 = 181, t182 = 182, t183 = 183, t184 = 184,
    t185 = 185, t186 = 186, t187 = 187, t188 = 188, t189 = 189,
    t190 = 190, t191 = 191, t192 = 192, t193 = 193, t194 = 194,
    t195 = 195, t196 = 196, t197 = 197, t198 = 198, t199 = 199,
}
