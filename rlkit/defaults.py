"""Default CSRO settings; each ``configs/ENV.json`` is deep-merged on top.

Every key the authors' ``configs/default.py`` has is here under the same name
with the same default value, plus the keys their per-env JSON files use that
their defaults lacked (marked "[from the env JSONs]"). ``rlkit.config`` derives
each key's type from its value here, so a key missing from this file is an
unknown key everywhere. Booleans may be written 0/1 in JSON, as the reference
files do; they are stored as true/false.

The defaults live in the package, not in ``configs/``: a config folder is data
(JSON), and no Python found beside a config is ever run (``rlkit.config``
says so in one line when a ``default.py`` sits there). This also lets an
installed package (not only a checkout) build its settings. The module holds
literals only; read it through :func:`rlkit.config.load_defaults`, which
hands out copies.
"""

default_config = dict(
    env_name="cheetah-dir",  # registered env to build (rlkit.envs); sets output/ENV/...
    n_train_tasks=2,  # tasks used for meta-training
    n_eval_tasks=2,  # held-out tasks used for meta-testing; train + eval = env_params.n_tasks
    interpolation=False,  # [from the env JSONs] held-out tasks interleaved with train tasks (gap rule) instead of the last n_eval_tasks
    randomize_tasks=False,  # [from the env JSONs] with interpolation: draw the held-out tasks at random instead of the gap rule
    latent_size=20,  # dimension of the task embedding z
    net_size=256,  # hidden units per layer of the Q, V, policy and dual-critic networks
    path_to_weights=None,  # folder of a previous run (holding seedN/) whose agent_itr_K.pth initialises all networks
    epoch_to_weights=None,  # [read by the reference launcher] K of the agent_itr_K.pth loaded from path_to_weights
    env_params=dict(  # passed as keyword arguments to the env constructor
        n_tasks=2,  # number of tasks the env creates; must equal n_train_tasks + n_eval_tasks
        randomize_tasks=True,  # draw / shuffle the task parameters (seeded) instead of an even grid
        max_episode_steps=200,  # time limit of one episode inside the env
    ),
    algo_params=dict(
        trainer="csro",  # [ours] the registered trainer that trains the method (rlkit.trainers; a method preset sets it); csro trains all five shipped presets
        meta_batch=16,  # tasks per gradient step, drawn from the train tasks
        batch_size=256,  # RL transitions per task in one gradient step
        num_iterations=500,  # training iterations; one progress.csv row and one evaluation each
        num_train_steps_per_itr=2000,  # gradient steps per iteration
        num_evals=2,  # independent evaluation repeats per test task
        num_steps_per_eval=600,  # evaluation transitions per repeat (several episodes)
        embedding_batch_size=64,  # context transitions per task fed to the encoder
        embedding_mini_batch_size=64,  # below embedding_batch_size: each step makes batch // mini updates, one per context chunk of this many transitions (the authors' loop); at or above it: one chunk
        max_path_length=200,  # episode length used when collecting evaluation rollouts
        discount=0.99,  # RL discount factor
        soft_target_tau=0.005,  # Polyak rate of the target V network
        policy_lr=3e-4,  # policy learning rate
        qf_lr=3e-4,  # Q networks learning rate
        vf_lr=3e-4,  # V network learning rate
        context_lr=3e-4,  # context encoder (and CLUB network) learning rate
        c_lr=1e-4,  # BRAC dual critic learning rate
        alpha_lr=1.0,  # learning rate of the BRAC penalty weight alpha (reference writes 1)
        c_iter=3,  # dual critic updates per gradient step
        policy_mean_reg_weight=1e-3,  # L2 penalty on the policy's pre-tanh mean
        policy_std_reg_weight=1e-3,  # L2 penalty on the policy's log std
        policy_pre_activation_weight=0.0,  # L2 penalty on the pre-tanh action (off)
        replay_buffer_size=1000000,  # capacity of each task's transition buffer
        save_replay_buffer=False,  # also store the replay buffers in snapshots (not supported offline)
        save_algorithm=False,  # also store the whole algorithm object in snapshots (not supported)
        save_environment=False,  # also store the environment in snapshots (not supported)
        reward_scale=5.0,  # reward multiplier in the Q target; trades reward against policy entropy
        sparse_rewards=False,  # train and infer tasks on the env's sparse reward (sparse-* envs)
        kl_lambda=0.1,  # weight of the KL term on z (only with use_information_bottleneck)
        use_information_bottleneck=False,  # false: deterministic z, the mean of per-transition encodings
        num_exp_traj_eval=1,  # evaluation trajectories gathered before z is first inferred at test time
        recurrent=False,  # recurrent encoder instead of the permutation-invariant MLP
        sample=True,  # read the stochastic (trj_evalsample*) dataset files instead of the deterministic ones (reference writes 1)
        train_epoch=6e5,  # behaviour checkpoint(s) for the train data: one step, or [start, stop, step] as in range()
        eval_epoch=6e5,  # behaviour checkpoint(s) for the held-out tasks' offline data, same form
        n_trj=50,  # [from the env JSONs] trajectories per checkpoint and task read from the dataset
        divergence_name="kl",  # BRAC divergence estimated by the dual critic: "kl" or "w"
        use_brac=True,  # add the BRAC divergence penalty to the policy loss
        use_value_penalty=False,  # also subtract alpha * divergence from the V target (needs use_brac)
        train_alpha=True,  # adapt alpha towards target_divergence
        alpha_init=500.0,  # initial alpha
        alpha_max=2000.0,  # alpha is clipped to [0, alpha_max]
        target_divergence=0.05,  # alpha grows while the divergence is above this and shrinks below it
        max_entropy=True,  # keep the SAC entropy term in the V target
        z_loss_weight=10.0,  # weight of the FOCAL distance-metric loss on z
        use_FOCAL_cl=True,  # [from the env JSONs] train the encoder with the FOCAL distance-metric loss
        use_club=True,  # [from the env JSONs] CSRO: minimise the CLUB mutual-information bound between z and (s, a)
        club_model_loss_weight=10.0,  # [from the env JSONs] weight of the CLUB network's likelihood loss
        club_loss_weight=25.0,  # [from the env JSONs] weight of the CLUB bound in the encoder loss
        club_use_sa=False,  # CLUB network conditions on (s, a) even when the context includes s'
        normalize_transition_z=False,  # [ours] scale each transition's encoder output to unit length before the mean (CORRO's encoder; deterministic encoder only)
        use_corro=False,  # [ours] CORRO: InfoNCE on transition embeddings, negatives from a conditional VAE (docs/method.md §8.2)
        corro_loss_weight=1.0,  # [ours] weight of CORRO's InfoNCE loss in the encoder loss
        corro_temperature=0.1,  # [ours] InfoNCE temperature on cosine similarities (CORRO's 0.1)
        corro_batch_size=64,  # [ours] InfoNCE queries per step, each with one positive key (CORRO's 64)
        corro_negatives=16,  # [ours] negatives per query (CORRO's 16)
        corro_negatives_from="cvae",  # [ours] where negatives' outcomes come from: cvae (CORRO's generative model) or relabel (the env's ground truth in random training tasks, point-robot family only)
        corro_cvae_hidden_size=64,  # [ours] hidden units of the CVAE's one hidden layer (CORRO's 64)
        corro_cvae_latent_size=5,  # [ours] dimension of the CVAE's latent h (CORRO's 5)
        corro_cvae_kl_weight=0.2,  # [ours] weight of the CVAE's KL term (CORRO's beta 0.2)
        corro_cvae_lr=3e-4,  # [ours] CVAE learning rate (CORRO's 3e-4)
        use_unicorn_decoder=False,  # [ours] UNICORN-SS: train the encoder with a decoder's likelihood of (r, s' - s) given (s, a, z) (docs/method.md §8.3)
        unicorn_recon_weight=1.0,  # [ours] weight of the reconstruction term in the encoder loss (UNICORN's 1, beside 0.15 on the metric)
        unicorn_decoder_hidden_size=64,  # [ours] hidden units of each of the decoder's 2 layers (UNICORN's 64)
        use_unicorn_classifier=False,  # [ours] UNICORN-SUP: train the encoder with a classifier's cross-entropy of the task label given each transition's z (docs/method.md §8.3)
        unicorn_classifier_weight=1.0,  # [ours] weight of the classifier's cross-entropy in the encoder loss
        unicorn_classifier_hidden_size=64,  # [ours] hidden units of the classifier's one hidden layer
        unicorn_classifier_classes=0,  # [ours] the classifier's classes, one per task id; 0: env_params.n_tasks
        use_next_obs_in_context=False,  # context transitions include s' (needed when tasks differ in dynamics)
        allow_backward_z=False,  # let the Q loss train the encoder through z
        true_gradient_penalty=False,  # [ours] dual-critic penalty on the gradient at the interpolate (BRAC paper) instead of the reference's penalty on the critic value (docs/method.md §5.3)
        train_dual_critic_without_brac=False,  # [ours] keep training the dual critic when use_brac is off, as the reference does although nothing reads it (results identical, slower)
        fused_adam=False,  # [ours] one fused Adam kernel per optimizer (CPU and CUDA): same update, last-bit rounding differs; see benchmarks/bench_fused_adam.py
        allow_eval=True,  # evaluate on the held-out tasks every iteration
        mb_replace=False,  # draw the meta batch's tasks with replacement
        layer_norm=False,  # [read by the reference launcher] layer norm in the context encoder
        data_dir="./data",  # offline dataset folder holding goal_idx{i}/ per task
        verify_data=True,  # check the dataset's SHA-256 checksums when loading (cached per file; sizes and finiteness are always checked)
    ),
    util_params=dict(
        base_log_dir="./output",  # runs go to BASE/ENV/EXP_NAME/seedN/
        use_gpu=True,  # train on CUDA when available
        gpu_id=0,  # CUDA device index (the --gpu option overrides it)
        debug=True,  # reference behaviour: runs go to EXP_NAME "debug" instead of exp_name
        docker=False,  # unused (the reference never supported docker)
        exp_name="CSRO",  # [from the env JSONs] run name: output/ENV/EXP_NAME/seedN/ (--exp_name overrides it)
        wandb=False,  # also log each run to Weights & Biases (pip install wandb; --wandb sets it)
        dtype="float32",  # [ours] what networks and batches compute in: float32, or float64 (runs on different CPUs agree to ~1e-10 instead of up to ~10% in small statistics; the golden tests use it)
    ),
    algo_type="CSRO",  # method preset from configs/algos/ (CSRO, FOCAL, offline-PEARL, CORRO, UNICORN-SS, UNICORN-SUP, BOReL, ...), applied over the env JSON
)

# Keys that are valid but absent by default: they are passed to the env constructor,
# and only some envs accept them. Their values here only fix their types.
optional_config = dict(
    env_params=dict(
        goal_radius=0.2,  # sparse-point-robot / point-robot-wind: distance to the goal inside which the sparse reward is paid
        forward_backward=False,  # ant-dir: only the two directions 0 and pi (needs n_tasks 2)
        zero_contact_forces=True,  # ant-*, humanoid-dir: cfrc_ext stays zero as in the authors' mujoco-py runs (false: real contact forces)
    ),
)
