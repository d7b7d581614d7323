"""Numbered schema migrations; entry N-1 takes the database to PRAGMA user_version N."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: guilds, artists, songs, clips, models, training runs; every row keyed by guild.
    """
    CREATE TABLE guilds (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE artists (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (guild_id, name_key),
        UNIQUE (guild_id, id)
    );
    CREATE TABLE songs (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        artist_id INTEGER NOT NULL,
        audio_sha256 TEXT NOT NULL,
        file_sha256 TEXT NOT NULL,
        filename TEXT NOT NULL,
        format TEXT NOT NULL,
        duration_s REAL NOT NULL,
        taught_by INTEGER,
        taught_at TEXT NOT NULL,
        UNIQUE (guild_id, audio_sha256),
        UNIQUE (guild_id, id),
        FOREIGN KEY (guild_id, artist_id) REFERENCES artists (guild_id, id) ON DELETE CASCADE
    );
    CREATE INDEX songs_by_file ON songs (guild_id, file_sha256);
    CREATE INDEX songs_by_artist ON songs (guild_id, artist_id);
    CREATE TABLE clips (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        song_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        UNIQUE (song_id, idx),
        FOREIGN KEY (guild_id, song_id) REFERENCES songs (guild_id, id) ON DELETE CASCADE
    );
    CREATE INDEX clips_by_song ON clips (guild_id, song_id);
    CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        feature_version INTEGER NOT NULL,
        frontend_version INTEGER,
        metrics TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (guild_id, version)
    );
    CREATE TABLE training_runs (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
        reason TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        model_version INTEGER,
        error TEXT,
        metrics TEXT
    );
    CREATE INDEX runs_by_guild ON training_runs (guild_id, id)
    """,
    # 2: song ids are never reused (AUTOINCREMENT: a stale id can't name another song, and a
    # model's snapshot can't look unchanged); a training run records the process that owns it.
    """
    CREATE TABLE songs_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id INTEGER NOT NULL,
        artist_id INTEGER NOT NULL,
        audio_sha256 TEXT NOT NULL,
        file_sha256 TEXT NOT NULL,
        filename TEXT NOT NULL,
        format TEXT NOT NULL,
        duration_s REAL NOT NULL,
        taught_by INTEGER,
        taught_at TEXT NOT NULL,
        UNIQUE (guild_id, audio_sha256),
        UNIQUE (guild_id, id),
        FOREIGN KEY (guild_id, artist_id) REFERENCES artists (guild_id, id) ON DELETE CASCADE
    );
    INSERT INTO songs_v2 (id, guild_id, artist_id, audio_sha256, file_sha256, filename, format,
                          duration_s, taught_by, taught_at)
        SELECT id, guild_id, artist_id, audio_sha256, file_sha256, filename, format,
               duration_s, taught_by, taught_at FROM songs;
    DROP TABLE songs;
    ALTER TABLE songs_v2 RENAME TO songs;
    CREATE INDEX songs_by_file ON songs (guild_id, file_sha256);
    CREATE INDEX songs_by_artist ON songs (guild_id, artist_id);
    ALTER TABLE training_runs ADD COLUMN owner TEXT
    """,
    # 3: guesses members can confirm or correct (the clip's Discord URL, until it expires), and
    # the deletion of a server's data that removing the bot schedules.
    """
    CREATE TABLE guesses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guild_id INTEGER NOT NULL,
        asked_by INTEGER NOT NULL,
        url TEXT,
        filename TEXT NOT NULL,
        size INTEGER NOT NULL,
        guessed TEXT NOT NULL,
        model_version INTEGER NOT NULL,
        asked_at TEXT NOT NULL,
        outcome TEXT CHECK (outcome IN ('right', 'corrected')),
        answer TEXT,
        answered_by INTEGER,
        answered_at TEXT,
        UNIQUE (guild_id, id)
    );
    CREATE INDEX guesses_by_model ON guesses (guild_id, model_version);
    CREATE INDEX guesses_by_member ON guesses (guild_id, asked_by);
    CREATE TABLE purges (
        guild_id INTEGER PRIMARY KEY,
        due_at REAL NOT NULL,
        scheduled_at TEXT NOT NULL
    )
    """,
    # 4: schema and code agree: the `models` table that nothing used goes (each model version's
    # meta.json in the model store is its record), and a run is running, succeeded or failed
    # (never "queued": a waiting training has no run yet).
    """
    DROP TABLE models;
    CREATE TABLE training_runs_v4 (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL REFERENCES guilds (id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        reason TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        model_version INTEGER,
        error TEXT,
        metrics TEXT,
        owner TEXT
    );
    INSERT INTO training_runs_v4 (id, guild_id, status, reason, started_at, finished_at,
                                  model_version, error, metrics, owner)
        SELECT id, guild_id, CASE status WHEN 'queued' THEN 'failed' ELSE status END, reason,
               started_at, finished_at, model_version, error, metrics, owner
        FROM training_runs;
    DROP TABLE training_runs;
    ALTER TABLE training_runs_v4 RENAME TO training_runs;
    CREATE INDEX runs_by_guild ON training_runs (guild_id, id)
    """,
)
