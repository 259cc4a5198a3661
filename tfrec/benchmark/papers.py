"""The papers' own numbers, quoted beside ours in the benchmark's paper tables (keyed by our row labels).

Every value is copied from the paper's table (../shared/papers/); the data sets differ from ours
(Industry / Amazon / Taobao / Taobao-MM / MicroVideo), so compare orderings, not values.
"""

# DMGIN, Table 2: (Industry AUC, GAUC, Amazon AUC, GAUC). "dmgin-paper" is the paper's DMGIN.
DMGIN_T2 = {"din": (0.7011, 0.6391, 0.7245, 0.6753), "dsin": (0.7029, 0.6391, 0.7284, 0.6781),
            "dien": (0.7035, 0.6406, 0.7303, 0.6796), "sim-hard": (0.7043, 0.6412, 0.7468, 0.6832),
            "eta": (0.7017, 0.6381, 0.7452, 0.6826), "twin": (0.7051, 0.6396, 0.7480, 0.6851),
            "sdim": (0.7073, 0.6409, 0.7497, 0.6844), "din-middle": (0.7077, 0.6420, 0.7521, 0.6867),
            "twinv2": (0.7078, 0.6421, 0.7526, 0.6878), "din-full": (0.7087, 0.6421, 0.7634, 0.6934),
            "dsin-full": (0.7121, 0.6421, 0.7663, 0.6955), "dmgin-paper": (0.7161, 0.6458, 0.7747, 0.7022)}
DMGIN_T2_COLUMNS = ("Industry AUC", "Industry GAUC", "Amazon AUC", "Amazon GAUC")
# DMGIN, Table 3 (on DMGIN-simple, no HSTU; the paper lists TWIN V2 and DSIN Full as the baselines to beat)
DMGIN_T3 = {"twinv2": (0.7078, 0.6421, 0.7526, 0.6878), "dsin-full": (0.7121, 0.6421, 0.7663, 0.6955),
            "dmgin-simple": (0.7134, 0.6440, 0.7701, 0.6986),
            "dmgin-simple-no-stats": (0.7129, 0.6435, 0.7679, 0.6977),
            "dmgin-simple-no-evolution": (0.7110, 0.6435, 0.7685, 0.6984)}
# DMGIN, Table 4: HSTU depth 1 -> 6 (our "dmgin" has 2 layers). The paper reports monotone gains; its
# values did not survive the text.
DMGIN_T4_DEPTHS = {1: "dmgin-hstu1", 2: "dmgin", 3: "dmgin-hstu3", 4: "dmgin-hstu4", 5: "dmgin-hstu5",
                   6: "dmgin-hstu6"}

# DMQN, Table 2: (Industry AUC, Taobao AUC); Table 3: Industry AUC.
DMQN_T2 = {"din": (0.7011, 0.7043), "dsin": (0.7029, 0.7057), "dien": (0.7035, 0.7094), "sim-hard": (0.7043, 0.7419),
           "twin": (0.7051, 0.7523), "sdim": (0.7073, 0.7347), "din-middle": (0.7077, 0.7573),
           "twinv2": (0.7078, 0.7572), "din-full": (0.7087, 0.7684), "dmqn": (0.7104, 0.7724)}
DMQN_T2_COLUMNS = ("Industry AUC", "Taobao AUC")
DMQN_T3 = {"twinv2": (0.7078,), "din-full": (0.7087,), "dmqn-simple": (0.7089,), "dmqn": (0.7103,)}
DMQN_T3_COLUMNS = ("Industry AUC",)

# SIREN (Taobao-MM GAUC): Table 1 (overall) and Table 2 (ESU ablation, soft GSU; "siren" = the full ESU).
SIREN_T1 = {"din": 0.6006, "twin": 0.6079, "miss": 0.6087, "sim-hard": 0.6145, "sim-soft": 0.6144, "muse": 0.6148,
            "siren-semid-gsu": 0.6148, "siren": 0.6155}
SIREN_T2 = {"ta-base": 0.6080, "ta+semid": 0.6095, "ta+simbucket": 0.6142, "ta+simbucket+semid": 0.6153,
            "siren": 0.6155}

# CHIME (MicroVideo; AUC, GAUC, LogLoss in %): Table 2 (rankers without / with LEARN / with CHIME; our DIN
# rows: "din", "learn", "chime"), Table 3 (CHIME's ablations on DIN) and Table 5 (the codebooks: hit
# ratio, perplexity / size per level).
CHIME_T2 = {"din": (74.19, 69.28, 40.10), "learn": (74.22, 69.34, 40.08), "chime": (74.36, 69.42, 40.02),
            "sim-soft": (74.53, 69.86, 39.87), "sim-soft+learn": (74.58, 69.94, 39.87),
            "sim-soft+chime": (74.67, 69.93, 39.81), "eta": (74.40, 69.69, 39.95), "eta+learn": (74.43, 69.75, 39.92),
            "eta+chime": (74.56, 69.76, 39.88), "sdim": (74.40, 69.69, 39.86), "sdim+learn": (74.46, 69.80, 39.87),
            "sdim+chime": (74.56, 69.84, 39.86), "twin": (74.79, 70.26, 39.84), "twin+learn": (74.81, 70.27, 39.81),
            "twin+chime": (74.91, 70.30, 39.78)}
CHIME_T3 = {"chime": (74.36, 69.42, 40.02), "chime-no-il": (74.27, 69.39, 40.08),
            "chime-no-icm": (74.32, 69.34, 40.02), "chime-no-iam": (74.32, 69.33, 40.05)}
CHIME_T5 = [("91.45%", "18.04 / 32"), ("100%", "14.80 / 16"), ("100%", "15.40 / 16")]
